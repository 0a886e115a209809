"""Records that cross a boundary (Kafka, Cassandra, WebSocket): defined once, with codec and types."""
