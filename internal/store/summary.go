package store

import "math"

// Summary is a mergeable summary of one sensor's readings over an interval:
// what both stores keep per minute and per hour once raw readings expire
// (retention, docs/RULES.md), and what Aggregate turns into a Bucket. Merge
// is associative, so minutes fold into hours and summaries into buckets.
type Summary struct {
	Count, NumCount int64 // readings, numeric readings
	Sum             float64
	Min, Max        float64
	FirstTS, LastTS int64
	First, Last     float64
	FirstNum        bool // first/last reading numeric
	LastNum         bool
}

// AddRaw adds one raw reading at ts (num is its value when isNum).
func (p *Summary) AddRaw(ts int64, num float64, isNum bool) {
	o := Summary{Count: 1, FirstTS: ts, LastTS: ts, FirstNum: isNum, LastNum: isNum}
	if isNum {
		o.NumCount, o.Sum, o.Min, o.Max, o.First, o.Last = 1, num, num, num, num, num
	}
	p.Merge(o)
}

// Merge adds the readings summarised by o.
func (p *Summary) Merge(o Summary) {
	if o.Count == 0 {
		return
	}
	if p.Count == 0 {
		*p = o
		return
	}
	if o.NumCount > 0 {
		if p.NumCount == 0 {
			p.Min, p.Max = o.Min, o.Max
		} else {
			p.Min, p.Max = math.Min(p.Min, o.Min), math.Max(p.Max, o.Max)
		}
	}
	p.Count += o.Count
	p.NumCount += o.NumCount
	p.Sum += o.Sum
	if o.FirstTS < p.FirstTS {
		p.FirstTS, p.First, p.FirstNum = o.FirstTS, o.First, o.FirstNum
	}
	if o.LastTS >= p.LastTS { // readings sharing an instant arrive in (ts, seq) order
		p.LastTS, p.Last, p.LastNum = o.LastTS, o.Last, o.LastNum
	}
}

// Bucket is the summary as an Aggregate bucket starting at start (ns).
func (p Summary) Bucket(start int64) Bucket {
	b := Bucket{StartNS: start, Count: p.Count, Sum: p.Sum}
	if p.NumCount > 0 {
		b.Avg, b.Min, b.Max = p.Sum/float64(p.NumCount), p.Min, p.Max
	}
	if p.FirstNum {
		b.First = p.First
	}
	if p.LastNum {
		b.Last = p.Last
	}
	return b
}
