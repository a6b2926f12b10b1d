package share

// Unexported values the external tests check.
var (
	JSDMax     = jsdMax
	SortedDesc = sortedDesc
)
