package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestProbeWriteAndSize(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		for i := range 3 {
			if err := s.ProbeWrite(ctx, time.UnixMilli(int64(1000+i))); err != nil {
				t.Fatalf("ProbeWrite #%d: %v", i, err)
			}
		}
		n, err := s.Size(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n <= 0 {
			t.Errorf("Size() = %d, want the database's bytes", n)
		}
	})
}
