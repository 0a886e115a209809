# The two commands a newcomer needs (both set everything up first, idempotently):
#   make demo   the local stack, the job, the fan-out, sample rules and events, alerts printed live
#   make test   unit tests, job tests (MiniCluster) and integration tests (real Kafka, Cassandra)
.PHONY: setup demo test bench clean

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/trackius demo

test: setup
	.venv/bin/python -m pytest -p no:cacheprovider tests

bench: setup
	.venv/bin/python -m bench.latency

clean:
	-.venv/bin/trackius stack down
	rm -rf .state
