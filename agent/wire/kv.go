package wire

import (
	"errors"
	"fmt"
	"time"
)

// KVSubject is the subject the value of key in a KV bucket is stored
// under. The server signs security values (the emergency stop, job pins
// and revoked flags) over this subject, so that a value cannot be moved
// to another key, and stores the signature in the message's headers.
func KVSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// ErrKVNotFound is a key that was never set, or was deleted.
var ErrKVNotFound = errors.New("key not found")

// ErrKVUnverified is a stored security value whose signature does not
// check out: readers act as if the value said the safe thing (stopped,
// revoked, not pinned to this version).
var ErrKVUnverified = errors.New("the stored value is not signed by a trusted server key")

// KVValue interprets the answer to a direct get of a KV key (get reads its
// headers): a status header (404: no such message), or the stored
// message, whose KV-Operation marks a delete.
func KVValue(get func(string) string, data []byte) ([]byte, error) {
	switch status := get("Status"); status {
	case "":
	case "404":
		return nil, ErrKVNotFound
	default:
		return nil, fmt.Errorf("direct get: status %s %s", status, get("Description"))
	}
	switch op := get("KV-Operation"); op {
	case "":
	case "DEL", "PURGE":
		return nil, ErrKVNotFound
	default:
		return nil, fmt.Errorf("direct get: unknown KV-Operation %q", op)
	}
	return data, nil
}

// VerifyKV checks the signature of a value read from bucket/key (get
// reads the stored message's headers). Values have no maximum age: the
// newest value stays in force until the server writes another.
func VerifyKV(check SigCheck, keys []CommandKey, bucket, key string, get func(string) string, value []byte, now time.Time) error {
	if _, err := VerifyWith(check, keys, KVSubject(bucket, key), get, value, now, 0); err != nil {
		return fmt.Errorf("%w: %s/%s: %v", ErrKVUnverified, bucket, key, err)
	}
	return nil
}
