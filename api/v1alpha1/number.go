package v1alpha1

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Number is a decimal number kept as its literal text, so a value such as 0.7 round-trips
// exactly and the CRD schema can say "type: number" without Go float fields (which
// controller-gen refuses for their lossy round-trips).
// +kubebuilder:validation:Type=number
type Number string

// MarshalJSON writes the number as a JSON number.
func (n Number) MarshalJSON() ([]byte, error) {
	if n == "" {
		return []byte("0"), nil
	}
	if _, err := strconv.ParseFloat(string(n), 64); err != nil {
		return nil, fmt.Errorf("number %q: %w", string(n), err)
	}
	return []byte(n), nil
}

// UnmarshalJSON accepts a JSON number (or a quoted one, for hand-written clients).
func (n *Number) UnmarshalJSON(b []byte) error {
	var num json.Number
	if err := json.Unmarshal(b, &num); err != nil {
		var s string
		if err2 := json.Unmarshal(b, &s); err2 != nil {
			return fmt.Errorf("number: %w", err)
		}
		num = json.Number(s)
	}
	if _, err := num.Float64(); err != nil {
		return fmt.Errorf("number %q: %w", num, err)
	}
	*n = Number(num)
	return nil
}

// Float64 returns the value; an empty Number is 0.
func (n Number) Float64() float64 {
	f, _ := strconv.ParseFloat(string(n), 64)
	return f
}
