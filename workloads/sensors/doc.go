// Package sensors is the IoT sensor pipeline Ballast ships as its workload
// (DESIGN.md, "Workloads"): simulated sensors produce temperature readings
// to Kafka, an ingester moves them from a consumer group into Cassandra (or
// the embedded CQL server), and a verifier compares what the topic holds
// with what the store holds.
//
// The pieces, one file each:
//   - reading.go: a reading and its JSON wire format;
//   - fleet.go: simulated sensors (random-walk temperatures, one reading
//     per sensor per millisecond at most);
//   - producer.go: writes a fleet's readings to the topic;
//   - batch.go, offsets.go, lag.go, backoff.go, latency.go: the ingester's
//     decisions as pure code (batches by partition, what to commit, lag,
//     retry delays, latency histogram);
//   - store.go: the CQL schema and writes (prepared statements, unlogged
//     batches);
//   - ingest.go: the consumer-group loop; naive.go: the reference design's
//     one-insert-per-message consumer, the benchmark's baseline;
//   - verify.go: reads the topic from the start and checks every reading
//     is stored;
//   - clients.go: Kafka and Cassandra client settings (addresses, TLS,
//     SASL, auth).
package sensors
