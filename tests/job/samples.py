"""Record JSON as the analyze job writes it, for tests of the jobs that read it back."""

ALERT_JSON = (
    '{"alert_id":"a1","revision":1,"rule_id":"doge","rule_version":1,"severity":"high",'
    '"content_key":"x:1","platform":"x","source":"s","author":"a","url":null,"excerpt":"I love $DOGE",'
    '"evidence":{"hits":[{"term":"$doge","start":7,"end":12}],"sentiment":0.6},'
    '"times":{"collected_at":2,"ingested_at":3,"analysed_at":4,"alerted_at":5},"routes":["feed"],'
    '"schema_version":1}'
)
FINDINGS_JSON = (
    '{"content_key":"x:1","sentiment":{"compound":0.6,"pos":0.5,"neu":0.5,"neg":0.0},'
    '"hits":[{"term":"$doge","start":7,"end":12}],"text_chars":12,"truncated":false,'
    '"models":{"sentiment":"vader-3.3.2"},"collected_at":2,"analysed_at":4,"part_id":"text",'
    '"schema_version":1}'
)
