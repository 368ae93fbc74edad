package wasm

// InstrumentBudget is instrumentBudget, for the external tests.
var InstrumentBudget = instrumentBudget
