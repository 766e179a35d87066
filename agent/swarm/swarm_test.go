package swarm

import (
	"testing"
	"time"
)

func TestModelForScript(t *testing.T) {
	base := Model{Latency: 100 * time.Millisecond, Jitter: 50 * time.Millisecond, FailRate: 0.5, OutputBytes: 10}
	tests := []struct {
		name, script            string
		wantLatency, wantJitter time.Duration
	}{
		{"no directive", "echo hi", base.Latency, base.Jitter},
		{"both", "# swarm: latency=5s jitter=2s\necho hi", 5 * time.Second, 2 * time.Second},
		{"latency only", "# swarm: latency=0s", 0, base.Jitter},
		{"leading space and CRLF", "  # swarm: jitter=1s\r\necho hi", base.Latency, time.Second},
		{"not the first line", "echo hi\n# swarm: latency=5s", base.Latency, base.Jitter},
		{"bad and unknown values ignored", "# swarm: latency=soon jitter=-1s color=red", base.Latency, base.Jitter},
	}
	for _, tt := range tests {
		got := base.forScript(tt.script)
		if got.Latency != tt.wantLatency || got.Jitter != tt.wantJitter {
			t.Errorf("%s: forScript(%q) = %v±%v, want %v±%v", tt.name, tt.script, got.Latency, got.Jitter, tt.wantLatency, tt.wantJitter)
		}
		if got.FailRate != base.FailRate || got.OutputBytes != base.OutputBytes {
			t.Errorf("%s: forScript(%q) changed the fail rate or output size", tt.name, tt.script)
		}
	}
}
