// Command go_runtime measures goroutines and an errgroup-style group the way
// bench/runtime_bench.c measures ctx_pool and ctx_group, printing the same
// TSV rows ("row<TAB>value<TAB>unit"); bench/runtime_bench.sh runs both.
//
// golang.org/x/sync is not installed here (offline build), so errGroup below
// is a minimal errgroup.WithContext: a WaitGroup, a sync.Once that records
// the first error and cancels the group's context, Wait cancelling at the
// end.  No limit (none of the rows uses one).
//
// Rows (see runtime_bench.c for the C side):
//
//	latency_p50/p99  go f(); f notes its start time and sends on a channel;
//	                 the submitter receives; repeat.
//	cold_p50/p99     the same after a 200 us time.Sleep before each go.
//	burst_p50/p99    100,000 go statements back to back.
//	pool_tasks_s     empty goroutines per second (go + WaitGroup).
//	group_tasks_s    the same through errGroup.Go.
//	fanout_*         10,000 goroutines in one errGroup blocked on
//	                 <-ctx.Done(); cancel the parent; time until the last
//	                 has returned and until Wait returns.
//	fanout_q_wait    not applicable to Go (no bounded pool): not printed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type errGroup struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errOnce sync.Once
	err     error
}

func withContext(ctx context.Context) (*errGroup, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &errGroup{cancel: cancel}, ctx
}

func (g *errGroup) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.errOnce.Do(func() {
				g.err = err
				if g.cancel != nil {
					g.cancel()
				}
			})
		}
	}()
}

func (g *errGroup) Wait() error {
	g.wg.Wait()
	if g.cancel != nil {
		g.cancel()
	}
	return g.err
}

var quick = flag.Bool("quick", false, "smaller runs")
var rows = flag.String("rows", "all", "all|latency|throughput|fanout")

// mono returns nanoseconds on the monotonic clock.
var epoch = time.Now()

func mono() int64 { return int64(time.Since(epoch)) }

func row(name string, v float64, unit string) {
	fmt.Printf("%s\t%.1f\t%s\n", name, v, unit)
}

func pct(v []int64, p float64) int64 {
	return v[int(p*float64(len(v)-1)+0.5)]
}

func sortI64(v []int64) { sort.Slice(v, func(i, j int) bool { return v[i] < v[j] }) }

// oneAtATime: warm rounds, then n measured, each after gap of quiet (0:
// go as soon as the last goroutine has started); prints NAME_p50/p99.
func oneAtATime(name string, n, warm int, gap time.Duration) {
	v := make([]int64, 0, n)
	done := make(chan int64)
	for i := 0; i < n+warm; i++ {
		if gap > 0 {
			time.Sleep(gap)
		}
		sub := mono()
		go func() { done <- mono() }()
		st := <-done
		if i >= warm {
			v = append(v, st-sub)
		}
	}
	sortI64(v)
	row(name+"_p50", float64(pct(v, 0.50)), "ns")
	row(name+"_p99", float64(pct(v, 0.99)), "ns")
}

func benchLatency() {
	n := 20000
	b := 100000
	if *quick {
		n, b = 2000, 10000
	}
	oneAtATime("latency", n, 100, 0)
	// Cold: 200 us of quiet before each submit.
	oneAtATime("cold", n/10, 10, 200*time.Microsecond)

	sub := make([]int64, b)
	st := make([]int64, b)
	var wg sync.WaitGroup
	wg.Add(b)
	for i := 0; i < b; i++ {
		sub[i] = mono()
		go func(i int) { st[i] = mono(); wg.Done() }(i)
	}
	wg.Wait()
	w := make([]int64, b)
	for i := range w {
		w[i] = st[i] - sub[i]
	}
	sortI64(w)
	row("burst_p50", float64(pct(w, 0.50)), "ns")
	row("burst_p99", float64(pct(w, 0.99)), "ns")
}

func benchThroughput() {
	n := 1000000
	if *quick {
		n = 100000
	}
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	row("pool_tasks_s", float64(n)/time.Since(t0).Seconds(), "tasks/s")

	g, _ := withContext(context.Background())
	t0 = time.Now()
	for i := 0; i < n; i++ {
		g.Go(func() error { return nil })
	}
	if err := g.Wait(); err != nil {
		panic(err)
	}
	row("group_tasks_s", float64(n)/time.Since(t0).Seconds(), "tasks/s")
}

func fanoutRound(total int) (cancelNs, lastNs, waitNs int64) {
	req, cancel := context.WithCancel(context.Background())
	g, ctx := withContext(req)
	var started sync.WaitGroup
	var last int64
	started.Add(total)
	for i := 0; i < total; i++ {
		g.Go(func() error {
			started.Done()
			<-ctx.Done()
			now := mono()
			for {
				prev := atomic.LoadInt64(&last)
				if now <= prev || atomic.CompareAndSwapInt64(&last, prev, now) {
					break
				}
			}
			return ctx.Err()
		})
	}
	started.Wait()
	t0 := mono()
	cancel()
	t1 := mono()
	g.Wait()
	t2 := mono()
	return t1 - t0, atomic.LoadInt64(&last) - t0, t2 - t0
}

func benchFanout() {
	rounds := 5
	if *quick {
		rounds = 2
	}
	var c, l, w []int64
	for r := 0; r < rounds; r++ {
		a, b, d := fanoutRound(10000)
		c, l, w = append(c, a), append(l, b), append(w, d)
	}
	sortI64(c)
	sortI64(l)
	sortI64(w)
	row("fanout_cancel", float64(c[rounds/2])/1e3, "us")
	row("fanout_last", float64(l[rounds/2])/1e3, "us")
	row("fanout_wait", float64(w[rounds/2])/1e3, "us")
}

func main() {
	flag.Parse()
	all := *rows == "all"
	if all || *rows == "latency" {
		benchLatency()
	}
	if all || *rows == "throughput" {
		benchThroughput()
	}
	if all || *rows == "fanout" {
		benchFanout()
	}
	os.Stdout.Sync()
}
