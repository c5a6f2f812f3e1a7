// go_client: the grpc-go anchor of the client benchmark (bench/client_bench.sh)
// -- Debian's grpc-go 1.33 calling demo.v1.Demo/Fanout with a 16-byte
// FanoutRequest{payload: "bench-payload!"}, the same calls bench/client_bench.c
// makes: C ClientConns (one HTTP/2 connection each) with M goroutines per
// connection, each looping a blocking unary call with context.Background().
//
//	go_client HOST:PORT C M N [WARMUP]
//
// WARMUP calls (default N/10, at most 5000) run first, unmeasured.  Prints
// the same line as client_bench:
//
//	calls=N secs=S calls_per_s=R p50_us=A p99_us=B cpu_us_per_call=X errors=E
//
// cpu_us_per_call is the process's utime+stime (getrusage RUSAGE_SELF)
// over the measured phase divided by N.  Run it with GOMAXPROCS=1 when it
// is pinned to one CPU.  Every response is checked; errors exit 1.  A phase
// not done after 300 s exits 3.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"ctxbench/demopb"

	"google.golang.org/grpc"
)

var payload = []byte("bench-payload!")

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6 +
		float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6
}

// phase runs n calls and returns the latencies, the error count and the wall time.
func phase(clients []demopb.DemoClient, m int, n int64) ([]time.Duration, int64, time.Duration) {
	lat := make([]time.Duration, n)
	var toStart, done, errs int64 = n, 0, 0
	var wg sync.WaitGroup
	finished := make(chan struct{})
	t0 := time.Now()
	for _, c := range clients {
		for j := 0; j < m; j++ {
			wg.Add(1)
			go func(c demopb.DemoClient) {
				defer wg.Done()
				req := &demopb.FanoutRequest{Payload: payload}
				for atomic.AddInt64(&toStart, -1) >= 0 {
					s := time.Now()
					r, err := c.Fanout(context.Background(), req)
					i := atomic.AddInt64(&done, 1) - 1
					lat[i] = time.Since(s)
					if err != nil || !bytes.Equal(r.Payload, payload) {
						atomic.AddInt64(&errs, 1)
					}
				}
			}(c)
		}
	}
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(300 * time.Second):
		fmt.Fprintf(os.Stderr, "go_client: phase not done after 300 s (%d of %d)\n",
			atomic.LoadInt64(&done), n)
		os.Exit(3)
	}
	return lat, errs, time.Since(t0)
}

func main() {
	if len(os.Args) < 5 {
		fmt.Fprintln(os.Stderr, "usage: go_client HOST:PORT C M N [WARMUP]")
		os.Exit(2)
	}
	nc, _ := strconv.Atoi(os.Args[2])
	m, _ := strconv.Atoi(os.Args[3])
	n, _ := strconv.ParseInt(os.Args[4], 10, 64)
	warm := n / 10
	if warm > 5000 {
		warm = 5000
	}
	if len(os.Args) > 5 {
		warm, _ = strconv.ParseInt(os.Args[5], 10, 64)
	}
	if nc < 1 || m < 1 || n < 1 || warm < 0 {
		fmt.Fprintln(os.Stderr, "go_client: bad C, M, N or WARMUP")
		os.Exit(2)
	}
	var clients []demopb.DemoClient
	var conns []*grpc.ClientConn
	for i := 0; i < nc; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cc, err := grpc.DialContext(ctx, os.Args[1], grpc.WithInsecure(), grpc.WithBlock())
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "go_client: dial:", err)
			os.Exit(1)
		}
		conns = append(conns, cc)
		clients = append(clients, demopb.NewDemoClient(cc))
	}
	if warm > 0 {
		if _, e, _ := phase(clients, m, warm); e != 0 {
			fmt.Fprintf(os.Stderr, "go_client: %d warm-up calls failed\n", e)
			os.Exit(1)
		}
	}
	c0 := cpuSeconds()
	lat, errs, wall := phase(clients, m, n)
	c1 := cpuSeconds()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	fmt.Printf("calls=%d secs=%.3f calls_per_s=%.0f p50_us=%.1f p99_us=%.1f cpu_us_per_call=%.2f errors=%d\n",
		n, wall.Seconds(), float64(n)/wall.Seconds(), us(lat[n/2]), us(lat[int64(float64(n)*0.99)]),
		(c1-c0)*1e6/float64(n), errs)
	for _, cc := range conns {
		cc.Close()
	}
	if errs != 0 {
		os.Exit(1)
	}
}
