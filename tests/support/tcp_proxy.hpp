// A loopback TCP relay in front of a server, for tests that need a connection to die without the
// server saying so (the client sees EOF after sending, the server goes on): cut() drops every
// relayed connection at once; new connections are relayed again afterwards.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mt::test {

class TcpProxy {
public:
    TcpProxy(std::string target_host, int target_port);
    ~TcpProxy();
    TcpProxy(const TcpProxy&) = delete;
    TcpProxy& operator=(const TcpProxy&) = delete;

    int port() const { return port_; }
    // Closes every relayed connection (both sides) now.
    void cut();
    // `url` (a postgresql:// URL of the test server) with host and port replaced by the proxy's.
    std::string url_through(const std::string& url) const;

private:
    void accept_loop(std::stop_token stop);
    void relay(int client, std::stop_token stop);

    std::string host_;
    int target_port_;
    int listener_ = -1;
    int port_ = 0;
    std::mutex mutex_;
    std::vector<int> sockets_;  // every open relayed socket, both sides
    std::vector<std::jthread> relays_;
    std::jthread acceptor_;
};

}  // namespace mt::test
