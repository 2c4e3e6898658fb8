// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
)

// Bucket is one cyclictest histogram bucket: Count samples of US
// microseconds. In JSON it is the pair [us, count]: a histogram has
// thousands of them.
type Bucket struct {
	US    uint64
	Count uint64
}

// MarshalJSON writes the bucket as [us, count].
func (b Bucket) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]uint64{b.US, b.Count})
}

// UnmarshalJSON reads [us, count].
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var pair []uint64
	if err := json.Unmarshal(data, &pair); err != nil || len(pair) != 2 {
		return fmt.Errorf("histogram bucket %s: want [us, count]", data)
	}
	b.US, b.Count = pair[0], pair[1]
	return nil
}

// Histogram is a latency histogram summed over cyclictest's threads.
type Histogram struct {
	Buckets  []Bucket `json:"buckets"`  // non-empty ones, ascending US
	Overflow uint64   `json:"overflow"` // samples past the histogram's range
	Max      uint64   `json:"max_us"`   // largest latency seen, µs
}

// Total is the number of samples, overflows included.
func (h Histogram) Total() uint64 {
	t := h.Overflow
	for _, b := range h.Buckets {
		t += b.Count
	}
	return t
}

// Percentile is the smallest latency at or below which p percent of the
// samples fall. When that rank is among the overflows, the only bound known
// is the maximum, and that is what it returns.
func (h Histogram) Percentile(p float64) uint64 {
	total := h.Total()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for _, b := range h.Buckets {
		seen += b.Count
		if seen >= rank {
			return b.US
		}
	}
	return h.Max
}

// samples are a Result's values as config -> round -> metric -> value,
// with the derived metrics in place of the raw ones they come from.
func samples(res *Result) map[string]map[int]map[string]float64 {
	out := map[string]map[int]map[string]float64{}
	for _, rd := range res.Rounds {
		if out[rd.Config] == nil {
			out[rd.Config] = map[int]map[string]float64{}
		}
		m := out[rd.Config][rd.Number]
		if m == nil {
			m = map[string]float64{}
			out[rd.Config][rd.Number] = m
		}
		maps.Copy(m, rd.Values)
		for name, h := range rd.Hists {
			deriveLatency(m, name, h)
		}
		deriveFairness(m)
	}
	return out
}

// deriveLatency records histogram @name's p50, p99 and max.
func deriveLatency(m map[string]float64, name string, h Histogram) {
	if h.Total() == 0 {
		return // cyclictest measured nothing; leave the metrics missing
	}
	m[name+"_p50_us"] = float64(h.Percentile(50))
	m[name+"_p99_us"] = float64(h.Percentile(99))
	m[name+"_max_us"] = float64(h.Max)
}

// niceWeights are the kernel's sched_prio_to_weight[] for the fairness
// groups: what CFS/EEVDF would give each group of equal size.
var niceWeights = []struct {
	nice   string
	weight float64
}{{"-20", 88761}, {"0", 1024}, {"19", 15}}

// WantShare is the CPU share, in percent, the weights ask for a group.
func WantShare(nice string) float64 {
	var sum, w float64
	for _, n := range niceWeights {
		sum += n.weight
		if n.nice == nice {
			w = n.weight
		}
	}
	return w / sum * 100
}

// deriveFairness replaces a round's fair_ticks.<nice> by the groups' shares
// of the CPU time they got together (fair_share.<nice>, percent) and
// fair_misalloc_pct: the share of that time that went to a group the
// weights did not give it (half the L1 distance between the shares got and
// the shares asked for).
func deriveFairness(m map[string]float64) {
	ticks := map[string]float64{}
	var total float64
	valid := true
	for k, v := range m {
		if nice, ok := strings.CutPrefix(k, "fair_ticks."); ok {
			ticks[nice] = v
			total += v
			valid = valid && v >= 0 // a group read after it exited
			delete(m, k)
		}
	}
	if !valid || len(ticks) != len(niceWeights) || total == 0 {
		return // no shares for this round
	}
	shares := map[string]float64{}
	for _, n := range niceWeights {
		shares[n.nice] = ticks[n.nice] / total * 100
		m["fair_share."+n.nice] = shares[n.nice]
	}
	m["fair_misalloc_pct"] = Misallocated(shares)
}

// Misallocated is the share of the fairness groups' CPU time, in percent,
// that went to a group the weights did not give it: half the L1 distance
// between @shares (percent, by nice level) and the shares WantShare asks.
func Misallocated(shares map[string]float64) float64 {
	var dist float64
	for _, n := range niceWeights {
		dist += math.Abs(shares[n.nice] - WantShare(n.nice))
	}
	return dist / 2
}
