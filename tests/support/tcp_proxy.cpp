#include "support/tcp_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <regex>
#include <stdexcept>

namespace mt::test {

TcpProxy::TcpProxy(std::string target_host, int target_port) : host_(std::move(target_host)), target_port_(target_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener_, 64) != 0)
        throw std::runtime_error("tcp proxy: cannot listen on 127.0.0.1");
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::jthread([this](std::stop_token stop) { accept_loop(stop); });
}

TcpProxy::~TcpProxy() {
    acceptor_.request_stop();
    for (auto& r : relays_) r.request_stop();
    if (acceptor_.joinable()) acceptor_.join();
    relays_.clear();
    ::close(listener_);
    std::lock_guard lock(mutex_);
    for (int s : sockets_) ::close(s);
}

void TcpProxy::cut() {
    std::lock_guard lock(mutex_);
    for (int s : sockets_) ::shutdown(s, SHUT_RDWR);
}

std::string TcpProxy::url_through(const std::string& url) const {
    static const std::regex host_port(R"(@[^/:?]+(:\d+)?)");
    return std::regex_replace(url, host_port, "@127.0.0.1:" + std::to_string(port_), std::regex_constants::format_first_only);
}

void TcpProxy::accept_loop(std::stop_token stop) {
    while (!stop.stop_requested()) {
        pollfd fd{listener_, POLLIN, 0};
        if (::poll(&fd, 1, 50) <= 0) continue;
        const int client = ::accept(listener_, nullptr, nullptr);
        if (client < 0) continue;
        std::lock_guard lock(mutex_);
        relays_.emplace_back([this, client](std::stop_token s) { relay(client, s); });
    }
}

void TcpProxy::relay(int client, std::stop_token stop) {
    const int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(target_port_));
    ::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr);
    if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(server);
        ::close(client);
        return;
    }
    {
        std::lock_guard lock(mutex_);
        sockets_.push_back(client);
        sockets_.push_back(server);
    }
    char buf[16384];
    while (!stop.stop_requested()) {
        pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
        if (::poll(fds, 2, 50) <= 0) continue;
        bool done = false;
        for (int i = 0; i < 2 && !done; ++i) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n <= 0 || ::write(fds[1 - i].fd, buf, static_cast<size_t>(n)) != n) done = true;
        }
        if (done) break;
    }
    std::lock_guard lock(mutex_);
    ::shutdown(client, SHUT_RDWR);
    ::shutdown(server, SHUT_RDWR);
    std::erase(sockets_, client);
    std::erase(sockets_, server);
    ::close(client);
    ::close(server);
}

}  // namespace mt::test
