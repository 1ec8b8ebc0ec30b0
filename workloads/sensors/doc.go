// Package sensors is the IoT sensor pipeline Ballast ships as its workload
// (docs/architecture.md, "The workload"): simulated sensors produce
// temperature readings to Kafka, an ingester moves them from a consumer
// group into Cassandra (or the embedded CQL server), and a verifier compares
// what the topic holds with what the store holds.
//
// The pieces, one concern per file:
//   - reading.go, fastjson.go: a reading and its JSON wire format
//     (eventdate RFC 3339 in UTC with milliseconds), with a hand-written
//     fast path for the producer's exact form;
//   - fleet.go: simulated sensors (random-walk temperatures, at most one
//     reading per sensor per millisecond, so a reading's sensor and
//     millisecond identify it in the store);
//   - producer.go: writes a fleet's readings to the topic;
//   - batch.go, offsets.go, alerts.go, lag.go, backoff.go, latency.go: the
//     ingester's decisions as plain code (batches per store partition,
//     what to commit, which alert to write, lag, retry delays, the latency
//     histogram);
//   - store.go: the CQL schema and statements (prepared, unlogged batches);
//   - ingest.go: the consumer-group loop; deadletter.go: what a malformed
//     message becomes; statsfile.go: counters published for a benchmark;
//   - naive.go: the reference design's one-insert-per-message consumer,
//     the benchmark's baseline;
//   - verify.go: reads the topic from the start and checks every reading
//     is stored;
//   - clients.go: Kafka and Cassandra client settings (addresses, TLS,
//     SASL, authentication, consistency).
package sensors
