package plugin

// Log writes a line to the host's log under the plugin's name, at one of
// the Level* values. Plugins may also write to stderr, which the host
// captures the same way.
func Log(level int32, msg string) { hostLog(level, msg) }
