//go:build !wasip1

package plugin

// Outside Wasm there is no host to produce through.

func kafkaProduce(string, string, []byte) int32 { return -1 }
func kafkaWait(int32, int32) int32              { return -4 }
func kafkaLastError() string                    { return "Kafka access exists only inside logtk-host" }
