// Package workloads will hold the IoT sensor ingest pipeline that ships with
// Ballast, Kafka -> Cassandra, and its embedded stand-ins (issue 6). Nothing
// is here yet.
package workloads
