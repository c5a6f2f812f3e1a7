// cpp_echo: the grpc C++ anchors of the server benchmark -- demo.v1.Demo
// served by grpc C++ (Debian's 1.51), Fanout echoing its payload, with the
// callback API or the synchronous API.
//
//   cpp_echo PORT callback|sync     prints "listening on port N"
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "demo/v1/demo.grpc.pb.h"

using demo::v1::Demo;
using demo::v1::FanoutReply;
using demo::v1::FanoutRequest;

class SyncImpl final : public Demo::Service {
    grpc::Status Fanout(grpc::ServerContext *, const FanoutRequest *req,
                        FanoutReply *rsp) override {
        rsp->set_payload(req->payload());
        return grpc::Status::OK;
    }
};

class CallbackImpl final : public Demo::CallbackService {
    grpc::ServerUnaryReactor *Fanout(grpc::CallbackServerContext *ctx,
                                     const FanoutRequest *req,
                                     FanoutReply *rsp) override {
        rsp->set_payload(req->payload());
        auto *r = ctx->DefaultReactor();
        r->Finish(grpc::Status::OK);
        return r;
    }
};

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: cpp_echo PORT callback|sync\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    SyncImpl sync_impl;
    CallbackImpl cb_impl;
    int port = 0;
    grpc::ServerBuilder b;
    b.AddListeningPort(std::string("127.0.0.1:") + argv[1],
                       grpc::InsecureServerCredentials(), &port);
    if (std::strcmp(argv[2], "sync") == 0)
        b.RegisterService(&sync_impl);
    else
        b.RegisterService(&cb_impl);
    std::unique_ptr<grpc::Server> s = b.BuildAndStart();
    if (!s) {
        std::fprintf(stderr, "cpp_echo: could not start\n");
        return 1;
    }
    std::printf("listening on port %d\n", port);
    std::fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    s->Shutdown();
    return 0;
}
