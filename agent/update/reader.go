package update

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/wire"
)

// The steps of an update that need no file, exported for the swarm
// simulator (agent/swarm): it asks for permits and reads releases through
// the same subjects as a real agent, so that the broker's load is real.

// Fetch reads rel's object through direct gets into w and checks its size
// and SHA-256 against the record. On failure kind is the target's reason
// (wire.UpdateDownloadFailed or wire.UpdateHashMismatch).
func Fetch(ctx context.Context, nc *nats.Conn, rel wire.Release, w io.Writer) (kind string, err error) {
	sum, err := fetch(ctx, nc, rel, w)
	switch {
	case errors.Is(err, errMismatch):
		return wire.UpdateHashMismatch, err
	case err != nil:
		return wire.UpdateDownloadFailed, err
	case hex.EncodeToString(sum) != rel.SHA256:
		return wire.UpdateHashMismatch, fmt.Errorf("the object's SHA-256 is %x, the release's %s", sum, rel.SHA256)
	}
	return "", nil
}

// Permit asks the server for a download permit on req.PCID's subject
// until it grants one. refused is the server's reason when it will not
// grant one at all (err is nil then).
func Permit(ctx context.Context, nc *nats.Conn, req wire.PermitRequest, log *slog.Logger) (refused string, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &Updater{cfg: Config{PCID: req.PCID}, log: log}
	err = u.permit(ctx, nc, req)
	var ref refusedError
	if errors.As(err, &ref) {
		return ref.reason, nil
	}
	return "", err
}

// PermitDone gives a download permit back.
func PermitDone(nc *nats.Conn, pcID, execID, version string) {
	u := &Updater{cfg: Config{PCID: pcID}, log: slog.New(slog.DiscardHandler)}
	u.permitDone(nc, execID, version)
}
