package sensors

import (
	"strconv"

	kafka "github.com/segmentio/kafka-go"
)

// Headers of a dead-lettered message.
const (
	HeaderError     = "ballast-error"
	HeaderTopic     = "ballast-source-topic"
	HeaderPartition = "ballast-source-partition"
	HeaderOffset    = "ballast-source-offset"
)

// deadLetter is m as it goes to the dead-letter topic: key and value
// unchanged, headers saying where it came from and what was wrong.
func deadLetter(topic string, m kafka.Message, err error) kafka.Message {
	return kafka.Message{
		Topic: topic,
		Key:   m.Key,
		Value: m.Value,
		Time:  m.Time,
		Headers: append(append([]kafka.Header(nil), m.Headers...),
			kafka.Header{Key: HeaderError, Value: []byte(err.Error())},
			kafka.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
			kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
			kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))}),
	}
}

func headerValue(m kafka.Message, key string) []byte {
	for i := len(m.Headers) - 1; i >= 0; i-- {
		if m.Headers[i].Key == key {
			return m.Headers[i].Value
		}
	}
	return nil
}
