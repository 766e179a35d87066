package rollout

import (
	"hash/fnv"
	"slices"
	"strings"

	"github.com/kanadehq/kanade/jobs"
)

// RestWave names the wave kanade adds for the targets no wave names.
const RestWave = "rest"

// Assign splits the execution's target PCs into disjoint waves: a PC
// belongs to the first wave that names it (by group or pc list), or whose
// percent/count share picks it from the PCs still unassigned. groupPCs
// holds the members of each group a wave names. The order within shares
// is a hash of the PC and the execution, so canaries differ from rollout
// to rollout but a rollout is reproducible. PCs no wave takes go into an
// added last wave RestWave (returned with ok=true), which asks for
// approval when any wave does.
func Assign(execID string, pcs []string, waves []jobs.Wave, groupPCs map[string][]string) (out [][]string, rest bool) {
	inTarget := make(map[string]bool, len(pcs))
	for _, p := range pcs {
		inTarget[p] = true
	}
	taken := make(map[string]bool, len(pcs))
	order := slices.Clone(pcs)
	key := func(p string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(execID))
		h.Write([]byte{0})
		h.Write([]byte(p))
		return h.Sum64()
	}
	slices.SortFunc(order, func(a, b string) int {
		ka, kb := key(a), key(b)
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return strings.Compare(a, b)
	})
	total := len(pcs)
	for _, w := range waves {
		var mine []string
		take := func(p string) {
			if inTarget[p] && !taken[p] {
				taken[p] = true
				mine = append(mine, p)
			}
		}
		switch {
		case w.Group != "":
			for _, p := range groupPCs[strings.ToLower(w.Group)] {
				take(p)
			}
		case len(w.PCs) > 0:
			for _, p := range w.PCs {
				take(p)
			}
		case w.Percent > 0 || w.Count > 0:
			n := w.Count
			if w.Percent > 0 {
				n = (w.Percent*total + 99) / 100 // at least one PC for any percentage of a non-empty target
			}
			for _, p := range order {
				if len(mine) >= n {
					break
				}
				take(p)
			}
		}
		slices.Sort(mine)
		out = append(out, mine)
	}
	var left []string
	for _, p := range pcs {
		if !taken[p] {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		slices.Sort(left)
		out = append(out, left)
		return out, true
	}
	return out, false
}
