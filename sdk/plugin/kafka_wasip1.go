//go:build wasip1

package plugin

import "unsafe"

//go:wasmimport logtk kafka_produce
func logtkKafkaProduce(name unsafe.Pointer, nameLen uint32, topic unsafe.Pointer, topicLen uint32, p unsafe.Pointer, n uint32) int32

//go:wasmimport logtk kafka_wait
func logtkKafkaWait(ticket int32, timeoutMillis int32) int32

//go:wasmimport logtk kafka_error
func logtkKafkaError(p unsafe.Pointer, n uint32) int32

func kafkaProduce(cluster, topic string, recs []byte) int32 {
	c, t := []byte(cluster), []byte(topic)
	if len(c) == 0 || len(t) == 0 {
		return -1
	}
	var p unsafe.Pointer
	if len(recs) > 0 {
		p = unsafe.Pointer(&recs[0])
	}
	return logtkKafkaProduce(unsafe.Pointer(&c[0]), uint32(len(c)), unsafe.Pointer(&t[0]), uint32(len(t)), p, uint32(len(recs)))
}

func kafkaWait(h, ms int32) int32 { return logtkKafkaWait(h, ms) }

func kafkaLastError() string {
	var buf [512]byte
	n := logtkKafkaError(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	if n <= 0 {
		return ""
	}
	return string(buf[:n])
}
