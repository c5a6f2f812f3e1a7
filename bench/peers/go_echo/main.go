// go_echo: the grpc-go anchor of the server benchmark -- demo.v1.Demo
// served by grpc-go (Debian's 1.33): Fanout echoes its payload.
//
//	go_echo PORT     prints "listening on port N"; SIGTERM stops it
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"ctxbench/demopb"

	"google.golang.org/grpc"
)

type server struct {
	demopb.UnimplementedDemoServer
}

func (server) Fanout(ctx context.Context, r *demopb.FanoutRequest) (*demopb.FanoutReply, error) {
	return &demopb.FanoutReply{Payload: r.Payload}, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go_echo PORT")
		os.Exit(2)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := grpc.NewServer()
	demopb.RegisterDemoServer(s, server{})
	fmt.Printf("listening on port %d\n", l.Addr().(*net.TCPAddr).Port)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-ch; s.Stop() }()
	s.Serve(l)
}
