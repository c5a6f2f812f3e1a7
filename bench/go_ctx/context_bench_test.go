// Go 1.19's context package, measured the same way as bench/ctx_bench.c
// measures libctx, row for row.  No dependencies: run offline with
//
//	GOFLAGS=-mod=mod GOPROXY=off GOCACHE=/tmp/... go test -run '^$' -bench . -benchmem
//
// bench/ctx_bench.sh compiles this once (go test -c) and runs the binary
// pinned with taskset, GOMAXPROCS=1 for every row except Parallel2 and
// Wakeup (GOMAXPROCS=2, two cores).
//
// Rows whose operation is "per child" / "per node" report an extra
// ns/node metric computed over whole batches only (ns/op divides by b.N,
// which need not be a multiple of the batch size).  Wakeup reports
// p50-ns and p99-ns; run it with a fixed count (-benchtime=2000x).
package ctxbench

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"
)

var sink int

// WithCancel(Background) + cancel.  Go has nothing to release.
func BenchmarkWithCancelBackground(b *testing.B) {
	bg := context.Background()
	for i := 0; i < b.N; i++ {
		_, cancel := context.WithCancel(bg)
		cancel()
	}
}

// WithCancel(live cancelable parent) + cancel: registers in the parent's
// children map and removes itself again.
func BenchmarkWithCancelParent(b *testing.B) {
	parent, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	for i := 0; i < b.N; i++ {
		_, cancel := context.WithCancel(parent)
		cancel()
	}
}

// WithTimeout(1h) + cancel: arms and stops a runtime timer.
func BenchmarkWithTimeout(b *testing.B) {
	bg := context.Background()
	for i := 0; i < b.N; i++ {
		_, cancel := context.WithTimeout(bg, time.Hour)
		cancel()
	}
}

type benchKey int

func valueChain() context.Context {
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		ctx = context.WithValue(ctx, benchKey(i), i)
	}
	return ctx
}

// Value lookup from the leaf of a 10-deep WithValue chain: the key bound
// deepest (nearest the root, 10 nodes away) ...
func BenchmarkValueDeepest(b *testing.B) {
	ctx := valueChain()
	n := 0
	for i := 0; i < b.N; i++ {
		if ctx.Value(benchKey(0)) != nil {
			n++
		}
	}
	sink = n
}

// ... and a key bound nowhere (walks to Background).
func BenchmarkValueMissing(b *testing.B) {
	ctx := valueChain()
	n := 0
	for i := 0; i < b.N; i++ {
		if ctx.Value(benchKey(99)) != nil {
			n++
		}
	}
	sink = n
}

// Err on a cancelled context.
func BenchmarkErrCancelled(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	for i := 0; i < b.N; i++ {
		if ctx.Err() != nil {
			n++
		}
	}
	sink = n
}

// Non-blocking "is it done?" on a live context.
func BenchmarkDoneCheck(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	for i := 0; i < b.N; i++ {
		select {
		case <-ctx.Done():
			n++
		default:
		}
	}
	sink = n
}

// Cancel a parent with `width` live WithCancel children; only the cancel
// is timed.  One op = one child.
func fanout(b *testing.B, width int) {
	children := make([]context.CancelFunc, width)
	batches := (b.N + width - 1) / width
	var timed time.Duration
	b.StopTimer()
	for k := 0; k < batches; k++ {
		parent, pcancel := context.WithCancel(context.Background())
		for i := range children {
			_, children[i] = context.WithCancel(parent)
		}
		t0 := time.Now()
		b.StartTimer()
		pcancel()
		b.StopTimer()
		timed += time.Since(t0)
	}
	for i := range children {
		children[i] = nil
	}
	b.ReportMetric(float64(timed.Nanoseconds())/float64(batches*width), "ns/node")
}

func BenchmarkFanout1000(b *testing.B)   { fanout(b, 1000) }
func BenchmarkFanout100000(b *testing.B) { fanout(b, 100000) }

// Cancel the root of a chain of `depth` WithCancel contexts; only the
// cancel is timed.  One op = one node.
func BenchmarkDeepChain10000(b *testing.B) {
	const depth = 10000
	batches := (b.N + depth - 1) / depth
	cancels := make([]context.CancelFunc, depth)
	var timed time.Duration
	b.StopTimer()
	for k := 0; k < batches; k++ {
		root, rcancel := context.WithCancel(context.Background())
		ctx := root
		for i := 1; i < depth; i++ {
			ctx, cancels[i] = context.WithCancel(ctx)
		}
		t0 := time.Now()
		b.StartTimer()
		rcancel()
		b.StopTimer()
		timed += time.Since(t0)
	}
	for i := range cancels {
		cancels[i] = nil
	}
	b.ReportMetric(float64(timed.Nanoseconds())/float64(batches*depth), "ns/node")
}

// Two goroutines (run with GOMAXPROCS=2) creating and cancelling children
// of one shared parent.  ns/op = wall time / total ops.
func BenchmarkParallel2(b *testing.B) {
	parent, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	b.SetParallelism(1) // GOMAXPROCS goroutines
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, cancel := context.WithCancel(parent)
			cancel()
		}
	})
}

// K goroutines (run with GOMAXPROCS=2: the machine's two cores) creating
// and cancelling children of one shared parent, b.N ops in all, split
// evenly; ns/op = wall time / total ops.  The same rows as ctx_bench's
// shared1..shared8.
func benchShared(b *testing.B, k int) {
	parent, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	var wg sync.WaitGroup
	start := make(chan struct{})
	share := b.N / k
	for i := 0; i < k; i++ {
		n := share
		if i == 0 {
			n = b.N - share*(k-1)
		}
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			<-start
			for j := 0; j < n; j++ {
				_, cancel := context.WithCancel(parent)
				cancel()
			}
		}(n)
	}
	b.ResetTimer()
	close(start)
	wg.Wait()
}

func BenchmarkShared1(b *testing.B) { benchShared(b, 1) }
func BenchmarkShared2(b *testing.B) { benchShared(b, 2) }
func BenchmarkShared4(b *testing.B) { benchShared(b, 4) }
func BenchmarkShared8(b *testing.B) { benchShared(b, 8) }

// A goroutine blocked on <-ctx.Done(); time from just before cancel() to
// its first instruction after the receive.  The canceller then blocks on
// the acknowledgement (so the runtime may hand its P to the waiter).
// The waiter is a fresh goroutine per rep (parked, not spinning, when
// cancel() runs: the canceller busy-waits 50 us after the waiter's
// "ready").
// One op = one wake-up; run with -benchtime=Nx.
func BenchmarkWakeup(b *testing.B) {
	lat := make([]int64, 0, b.N)
	ready := make(chan struct{})
	ack := make(chan int64)
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		var t0 time.Time
		go func() {
			done := ctx.Done()
			ready <- struct{}{}
			<-done
			ack <- time.Since(t0).Nanoseconds()
		}()
		<-ready
		// Let it park on the channel.  A busy wait, not time.Sleep: Go
		// 1.19's sleeps here round up to ~1 ms (epoll_wait timeouts).
		for s := time.Now(); time.Since(s) < 50*time.Microsecond; {
		}
		t0 = time.Now()
		cancel()
		lat = append(lat, <-ack)
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
}
