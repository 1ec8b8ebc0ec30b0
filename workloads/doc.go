// Package workloads holds the workload that ships with Ballast: the IoT
// sensor pipeline of the reference demo (docs/architecture.md, "The
// workload"), run by "ballast workload ...".
//
//   - sensors: simulated sensors producing temperature readings to the
//     Kafka topic sensortemperature, the ingester moving them through
//     consumer group sensortempgroup into the Cassandra table
//     sensors.temperature_by_day, the reference design's naive consumer,
//     and the verifier comparing the topic with the store;
//   - kafka: an embedded Kafka-protocol broker (kfake) whose log lives in
//     a data directory, so the pipeline runs with no Kafka installed;
//   - cql: an embedded CQL v4 server over an embedded storage engine, so
//     it runs with no Cassandra installed.
//
// The same producer, ingester and verifier work against Apache Kafka and
// Apache Cassandra (addresses, TLS and authentication are flags).
package workloads
