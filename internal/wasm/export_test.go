package wasm

// InstrumentBudget is instrumentBudget, for the external tests.
var InstrumentBudget = instrumentBudget

// SetABI makes an instance behave as if its plugin spoke ABI version v.
func SetABI(i *Instance, v uint32) { i.abi = v }
