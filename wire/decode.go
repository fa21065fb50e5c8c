package wire

import "encoding/json"

// Decode reads a reply's data (an api.Secret's Data, numbers as
// json.Number) into the typed struct T, once.
func Decode[T any](data map[string]any) (T, error) {
	var v T
	b, err := json.Marshal(data)
	if err != nil {
		return v, err
	}
	err = json.Unmarshal(b, &v)
	return v, err
}
