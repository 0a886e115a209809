"""Everything that touches the outside: Kafka and Cassandra builders, clients and writers."""
