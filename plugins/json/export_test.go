package json

// AppendString is appendString, for the external tests.
var AppendString = appendString
