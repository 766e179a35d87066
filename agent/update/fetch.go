package update

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
)

// Reading a release. Agents have no JetStream API but direct gets of the
// release stream (wire.ReleaseReadSubject): nats.go's ObjectStore.Get
// needs stream info and a push consumer whose deliver subject, flow
// control and acknowledgements would all have to cross into the server's
// account, and a consumer's deliver subject is the endpoint's to choose.
// The object keeps nats.go's layout (the server writes it with
// ObjectStore.Put): its metadata (jetstream.ObjectInfo) under
// wire.ReleaseMetaSubject, its chunks in order under
// wire.ReleaseChunkSubject.

const (
	// fetchBatch and fetchBatchBytes bound one direct-get batch (chunks
	// are 128 KiB by default).
	fetchBatch      = 32
	fetchBatchBytes = 4 << 20
	// fetchWait bounds the wait for each message of an answer.
	fetchWait = 15 * time.Second
)

// errMismatch: the object is not what the signed record describes.
var errMismatch = errors.New("the object does not match the release record")

// directGet is the body of a direct get request (nats-server's
// JSApiMsgGetRequest).
type directGet struct {
	Seq      uint64 `json:"seq,omitempty"`
	LastFor  string `json:"last_by_subj,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// fetch reads the release's object into w and returns the SHA-256 of what
// it read. An object larger or smaller than the record, or a link, is
// errMismatch; a missing or deleted object and a read that fails are other
// errors.
func fetch(ctx context.Context, nc *nats.Conn, rel wire.Release, w io.Writer) (sum []byte, err error) {
	info, err := objectInfo(ctx, nc, rel.Object)
	if err != nil {
		return nil, err
	}
	switch {
	case info.Deleted:
		return nil, fmt.Errorf("object %s was deleted from the %s bucket", rel.Object, wire.ReleaseBucket)
	case info.Opts != nil && info.Opts.Link != nil:
		return nil, fmt.Errorf("%w: object %s is a link", errMismatch, rel.Object)
	case int64(info.Size) != rel.Size:
		return nil, fmt.Errorf("%w: object %s has %d bytes, the release %d", errMismatch, rel.Object, info.Size, rel.Size)
	case wire.ValidateID("nuid", info.NUID) != nil:
		return nil, fmt.Errorf("object %s: metadata without a valid nuid", rel.Object)
	}
	h := sha256.New()
	out := io.MultiWriter(h, w)
	subject := wire.ReleaseChunkSubject(info.NUID)
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	var got int64
	next := uint64(1)
	for got < rel.Size {
		body, _ := json.Marshal(directGet{Seq: next, NextFor: subject, Batch: fetchBatch, MaxBytes: fetchBatchBytes})
		if err := nc.PublishRequest(wire.ReleaseReadSubject, inbox, body); err != nil {
			return nil, err
		}
		n, last, err := readBatch(ctx, sub, subject, rel.Size-got, out)
		got += n
		if err != nil {
			return nil, fmt.Errorf("object %s after %d of %d bytes: %w", rel.Object, got, rel.Size, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: object %s ends after %d of %d bytes", errMismatch, rel.Object, got, rel.Size)
		}
		next = last + 1
	}
	return h.Sum(nil), nil
}

// readBatch reads the answer to one batch request: chunk messages, then
// the end-of-batch marker, or "no message" when the stream holds no more
// chunks. It writes at most room bytes (more is errMismatch) and returns
// how many it wrote and the sequence of the last chunk.
func readBatch(ctx context.Context, sub *nats.Subscription, subject string, room int64, out io.Writer) (n int64, last uint64, err error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, fetchWait)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			return n, last, err
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // end of the batch
			return n, last, nil
		case "404": // no (more) chunks
			return n, last, nil
		default:
			return n, last, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
		}
		if s := m.Header.Get(jetstream.SubjectHeader); s != subject {
			return n, last, fmt.Errorf("direct get: a message of %q, not of %q", s, subject)
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil || seq <= last {
			return n, last, fmt.Errorf("direct get: bad sequence %q", m.Header.Get(jetstream.SequenceHeader))
		}
		if int64(len(m.Data)) > room-n {
			return n, last, fmt.Errorf("%w: the object is longer than the release", errMismatch)
		}
		if _, err := out.Write(m.Data); err != nil {
			return n, last, err
		}
		n += int64(len(m.Data))
		last = seq
		if n == room {
			return n, last, nil // the rest of the batch (if any) is not needed
		}
	}
}

// objectInfo reads the metadata of an object.
func objectInfo(ctx context.Context, nc *nats.Conn, name string) (jetstream.ObjectInfo, error) {
	var info jetstream.ObjectInfo
	body, _ := json.Marshal(directGet{LastFor: wire.ReleaseMetaSubject(name)})
	rctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	m, err := nc.RequestWithContext(rctx, wire.ReleaseReadSubject, body)
	if err != nil {
		return info, fmt.Errorf("read the metadata of %s: %w", name, err)
	}
	switch status := m.Header.Get("Status"); status {
	case "":
	case "404":
		return info, fmt.Errorf("object %s is not in the %s bucket", name, wire.ReleaseBucket)
	default:
		return info, fmt.Errorf("read the metadata of %s: status %s %s", name, status, m.Header.Get("Description"))
	}
	if err := json.Unmarshal(m.Data, &info); err != nil {
		return info, fmt.Errorf("metadata of %s: %w", name, err)
	}
	if info.Name != name {
		return info, fmt.Errorf("the metadata under %s names %q", name, info.Name)
	}
	return info, nil
}
