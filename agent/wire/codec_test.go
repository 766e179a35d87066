package wire

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestCodecs_EveryField: every exported field of the messages with a
// hand-written codec survives it. Fields are filled by reflection, so a
// field added to Result or Command that AppendJSON, decodeResultFast or
// decodeCommandFast does not know fails here: the encoder drops it, or
// the fast decoder gives up on its key (the json.Unmarshal fallback would
// hide that from a plain round trip).
func TestCodecs_EveryField(t *testing.T) {
	t.Run("Result", func(t *testing.T) {
		want := filled[Result](t)
		b, err := want.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		std, err := json.Marshal(&want)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(std) {
			t.Errorf("AppendJSON wrote\n%s\njson.Marshal writes\n%s", b, std)
		}
		var got Result
		if !decodeResultFast(b, &got) {
			t.Fatalf("decodeResultFast gave up on %s: a field it does not read", b)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("AppendJSON → decodeResultFast (-want +got):\n%s", diff)
		}
		if got, err := DecodeResult(b); err != nil || !cmp.Equal(want, got) {
			t.Errorf("DecodeResult(%s) = %+v, %v; want %+v", b, got, err, want)
		}
	})
	t.Run("Command", func(t *testing.T) {
		want := filled[Command](t)
		// The server encodes commands with json.Marshal; the agents'
		// decoder is the hand-written one.
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got Command
		if !decodeCommandFast(b, &got) {
			t.Fatalf("decodeCommandFast gave up on %s: a field it does not read", b)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("json.Marshal → decodeCommandFast (-want +got):\n%s", diff)
		}
		if got, err := DecodeCommand(b); err != nil || !cmp.Equal(want, got) {
			t.Errorf("DecodeCommand(%s) = %+v, %v; want %+v", b, got, err, want)
		}
	})
}

// filled returns a T whose exported fields all hold distinct non-zero
// values; it fails the test for a field of a kind it cannot fill.
func filled[T any](t *testing.T) T {
	t.Helper()
	var v T
	rv := reflect.ValueOf(&v).Elem()
	base := time.Date(2026, 12, 6, 3, 4, 5, 600700800, time.UTC)
	for i := range rv.NumField() {
		f, sf := rv.Field(i), rv.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		n := i + 1
		switch {
		case sf.Type == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(base.Add(time.Duration(n)*time.Hour + time.Duration(n))))
		case f.Kind() == reflect.String:
			f.SetString(sf.Name + " value é <&> \"q\"\n")
		case f.Kind() == reflect.Int64: // Duration
			f.SetInt(int64(n)*int64(time.Second) + int64(n))
		case f.Kind() == reflect.Int:
			f.SetInt(int64(n)*1000 + int64(n))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.Kind() == reflect.Pointer && sf.Type.Elem().Kind() == reflect.Int:
			p := reflect.New(sf.Type.Elem())
			p.Elem().SetInt(-int64(n))
			f.Set(p)
		default:
			t.Fatalf("%T.%s: no test value for a %s; teach filled and the codec this type", v, sf.Name, sf.Type)
		}
		if f.IsZero() {
			t.Fatalf("%T.%s is still zero", v, sf.Name)
		}
	}
	return v
}
