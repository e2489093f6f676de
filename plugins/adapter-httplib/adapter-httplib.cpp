// mtenant::adapter_httplib: with_tenant/TenantGate glue for cpp-httplib handlers, and Server, an
// epoll + OpenSSL front layer in front of httplib (idle keep-alive connections hold no worker,
// bounded bodies and heads). Over 500 lines because the front layer and the glue share the
// per-thread request state below; splitting them would expose that state in a header.

#include <mt/adapter/httplib.hpp>

#include <mt/base/errors.hpp>

#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

namespace mt::adapter::httplib {

using Clock = std::chrono::steady_clock;

namespace detail {

// One client connection of Server and the bytes read from it but not consumed yet.
struct Connection {
    socket_t fd = -1;
    std::string pending;
    size_t served = 0;                    // requests answered on it
    Clock::time_point deadline{};         // closed when it passes while waiting
    bool head_started = false;            // the deadline is the read_timeout of a started head
    bool draining = false;                // answered for the last time: unread input is discarded until EOF
    SSL* ssl = nullptr;                   // HTTPS: the session, kept across keep-alive waits
    ~Connection() {
        if (ssl) SSL_free(ssl);
        if (fd >= 0) {
            ::shutdown(fd, SHUT_RDWR);
            ::close(fd);
        }
    }
};

}  // namespace detail

namespace {

using detail::Connection;
constexpr const char* json_type = "application/json";

// Set by the connection stream of Server while a request is read on this thread: the error handler
// turns cpp-httplib's 400 for an unreadable body into 413 when the body ran past its budget.
thread_local bool body_over_budget = false;
// Set by the post-routing handler: the answer said Connection: close (an error whose request body
// may be left unread), so Server closes instead of reading the rest as the next request.
thread_local bool close_after = false;

std::string error_json(const std::string& error, const nlohmann::json& extra = nlohmann::json::object()) {
    nlohmann::json j{{"error", error}};
    for (const auto& [k, v] : extra.items()) j[k] = v;
    return j.dump();
}

std::string status_text(int status) {
    switch (status) {
        case 400: return "bad request";
        case 404: return "not found";
        case 405: return "method not allowed";
        case 408: return "request timeout";
        case 411: return "length required";
        case 413: return "request body too large";
        case 414: return "request target too long";
        case 415: return "unsupported content encoding";
        case 416: return "range not satisfiable";
        case 417: return "expectation failed";
        case 431: return "request header fields too large";
        case 500: return "internal error";
        case 503: return "service unavailable";
        default: return "error";
    }
}

// The refusal a handler's exception maps to, if any: 503 for database unavailability, 400 for a
// parameter PostgreSQL cannot hold.
std::optional<TenantRefusal> refusal_for(const std::exception& e) {
    if (is_database_unavailable(e)) return unavailable_refusal(e);
    return invalid_parameter_refusal(e);
}

void answer_refusal(::httplib::Response& res, const TenantRefusal& refusal) {
    res.headers.clear();  // whatever the handler had set is not the answer any more
    send(res, refusal);
}

// The listening socket of any server (a protected member, reached the one way C++ allows).
struct ListeningSocket : ::httplib::Server {
    static socket_t of(::httplib::Server& server) { return server.*(&ListeningSocket::svr_sock_); }
};

int ms(std::chrono::milliseconds d) { return static_cast<int>(std::max<int64_t>(0, d.count())); }

int remaining_ms(Clock::time_point deadline) {
    return ms(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()) +
              std::chrono::milliseconds(1));
}

bool head_complete(const std::string& bytes) { return bytes.find("\r\n\r\n") != std::string::npos; }

// Sends a short answer on a connection no worker has, without blocking the waiting room.
void answer(Connection& c, int status, const std::string& reason) {
    const std::string body = error_json(status_text(status));
    const std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\nConnection: close\r\n\r\n" + body;
    if (c.ssl) {
        if (SSL_is_init_finished(c.ssl)) SSL_write(c.ssl, out.data(), static_cast<int>(out.size()));
        ERR_clear_error();
        return;
    }
    [[maybe_unused]] const auto sent = ::send(c.fd, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

// cpp-httplib's Stream over a Connection: the bytes already read first, then the socket, with the
// request's read deadline for every read, write_timeout for every write and a byte budget (a body
// past it fails the read, which the error handler answers with 413).
class ConnectionStream : public ::httplib::Stream {
public:
    ConnectionStream(Connection& c, const ServerOptions& o)
        : c_(c), options_(o), deadline_(Clock::now() + o.read_timeout),
          budget_(o.max_header_bytes + o.max_body_bytes + 64 * 1024) {}

    bool is_readable() const override {
        return pos_ < c_.pending.size() || wait(POLLIN, remaining_ms(deadline_));
    }
    bool is_writable() const override { return wait(POLLOUT, ms(options_.write_timeout)); }

    ssize_t read(char* ptr, size_t size) override {
        if (pos_ >= c_.pending.size()) {
            c_.pending.clear();
            pos_ = 0;
            if (used_ >= budget_) {
                body_over_budget = true;
                return -1;
            }
            char buf[16 * 1024];
            const size_t want = std::min(sizeof buf, budget_ - used_);
            ssize_t n = 0;
            if (c_.ssl) {
                n = tls_io(deadline_, [&] { return SSL_read(c_.ssl, buf, static_cast<int>(want)); });
            } else {
                if (!wait(POLLIN, remaining_ms(deadline_))) return -1;
                n = ::recv(c_.fd, buf, want, MSG_DONTWAIT);
            }
            if (n <= 0) return n == 0 ? 0 : -1;
            c_.pending.assign(buf, static_cast<size_t>(n));
        }
        const size_t n = std::min(size, c_.pending.size() - pos_);
        std::memcpy(ptr, c_.pending.data() + pos_, n);
        pos_ += n;
        used_ += n;
        return static_cast<ssize_t>(n);
    }

    ssize_t write(const char* ptr, size_t size) override {
        if (c_.ssl)
            return tls_io(Clock::now() + options_.write_timeout, [&] {
                return SSL_write(c_.ssl, ptr, static_cast<int>(std::min<size_t>(size, INT32_MAX)));
            });
        if (!wait(POLLOUT, ms(options_.write_timeout))) return -1;
        return ::send(c_.fd, ptr, size, MSG_DONTWAIT | MSG_NOSIGNAL);
    }

    void get_remote_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
    void get_local_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
    socket_t socket() const override { return c_.fd; }

    // Hands the unconsumed bytes (a pipelined next request) back to the connection.
    void keep_rest() { c_.pending.erase(0, pos_); }

    // One OpenSSL call on the non-blocking socket, waiting for it to be readable or writable as
    // OpenSSL asks, until the deadline: bytes moved, 0 at a clean close, -1 on error or timeout.
    template <class Call>
    ssize_t tls_io(Clock::time_point deadline, Call call) const {
        for (;;) {
            ERR_clear_error();
            const int n = call();
            if (n > 0) return n;
            switch (SSL_get_error(c_.ssl, n)) {
                case SSL_ERROR_WANT_READ:
                    if (!wait(POLLIN, remaining_ms(deadline))) return -1;
                    break;
                case SSL_ERROR_WANT_WRITE:
                    if (!wait(POLLOUT, remaining_ms(deadline))) return -1;
                    break;
                case SSL_ERROR_ZERO_RETURN: return 0;
                default: return -1;
            }
        }
    }

private:
    bool wait(short events, int timeout_ms) const {
        pollfd p{c_.fd, events, 0};
        for (;;) {
            const int r = ::poll(&p, 1, timeout_ms);
            if (r < 0 && errno == EINTR) continue;
            return r > 0 && (p.revents & (events | POLLHUP)) != 0;
        }
    }
    void address(bool local, std::string& ip, int& port) const {
        sockaddr_storage addr{};
        socklen_t len = sizeof addr;
        const int r = local ? ::getsockname(c_.fd, reinterpret_cast<sockaddr*>(&addr), &len)
                            : ::getpeername(c_.fd, reinterpret_cast<sockaddr*>(&addr), &len);
        if (r != 0) return;
        char text[INET6_ADDRSTRLEN] = {};
        if (addr.ss_family == AF_INET) {
            const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
            ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
            port = ntohs(a->sin_port);
        } else if (addr.ss_family == AF_INET6) {
            const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
            ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
            port = ntohs(a->sin6_port);
        }
        ip = text;
    }

    Connection& c_;
    const ServerOptions& options_;
    Clock::time_point deadline_;
    size_t budget_;
    size_t used_ = 0;
    size_t pos_ = 0;
};

}  // namespace

// The waiting room (one epoll thread holding every connection that has no complete request head)
// and the worker pool that serves complete heads.
class Server::Connections : public ::httplib::TaskQueue {
public:
    using Serve = std::function<void(std::unique_ptr<Connection>)>;

    Connections(const ServerOptions& options, Serve serve, SSL_CTX* tls)
        : options_(options), serve_(std::move(serve)), tls_(tls), workers_(std::max<size_t>(1, options.worker_threads)) {
        epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
        wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = wake_;
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
        waiter_ = std::thread([this] { wait_loop(); });
    }
    ~Connections() override {
        stop();
        ::close(wake_);
        ::close(epoll_);
    }

    // Accepted sockets: straight into the waiting room, on the accepting thread (it is quick).
    void enqueue(std::function<void()> fn) override { fn(); }

    void shutdown() override {
        stop();
        workers_.shutdown();
    }

    // A connection without a complete request head waits here until one arrives or its deadline passes.
    void park(std::unique_ptr<Connection> c) {
        std::lock_guard lock(mutex_);
        if (stopping_) return;  // the connection closes
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.fd = c->fd;
        const int fd = c->fd;
        waiting_[fd] = std::move(c);
        if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) waiting_.erase(fd);
    }

private:
    void stop() {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            stopping_ = true;
        }
        const uint64_t one = 1;
        [[maybe_unused]] const auto w = ::write(wake_, &one, sizeof one);
        waiter_.join();
        std::lock_guard lock(mutex_);
        waiting_.clear();
    }

    void dispatch(std::unique_ptr<Connection> c) {
        // std::function needs a copyable callable: the connection travels as a shared_ptr.
        auto shared = std::shared_ptr<Connection>(c.release());
        workers_.enqueue([this, shared] {
            auto owned = std::make_unique<Connection>();
            std::swap(owned->fd, shared->fd);
            owned->pending = std::move(shared->pending);
            owned->served = shared->served;
            std::swap(owned->ssl, shared->ssl);
            serve_(std::move(owned));
        });
    }

    // Discards what arrived on a connection being closed; false at its EOF.
    static bool drain(Connection& c) {
        char buf[16 * 1024];
        for (;;) {
            const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0) return false;
            if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        }
    }

    // take() over TLS: the handshake (a step at a time, as bytes arrive), then the decrypted head.
    bool take_tls(Connection& c) {
        if (!c.ssl) {
            c.ssl = SSL_new(tls_);
            if (!c.ssl) return false;
            ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
            SSL_set_fd(c.ssl, c.fd);
        }
        if (!c.head_started) {
            c.head_started = true;
            c.deadline = Clock::now() + options_.read_timeout;
        }
        ERR_clear_error();
        if (!SSL_is_init_finished(c.ssl)) {
            const int r = SSL_accept(c.ssl);
            if (r != 1) {
                const int e = SSL_get_error(c.ssl, r);
                ERR_clear_error();
                return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
            }
        }
        char buf[16 * 1024];
        for (;;) {
            const int n = SSL_read(c.ssl, buf, sizeof buf);
            if (n <= 0) {
                const int e = SSL_get_error(c.ssl, n);
                ERR_clear_error();
                return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
            }
            c.pending.append(buf, static_cast<size_t>(n));
            if (c.pending.size() > options_.max_header_bytes || head_complete(c.pending)) return true;
        }
    }

    // Reads what arrived; true when the connection is still worth waiting for.
    bool take(Connection& c) {
        char buf[16 * 1024];
        for (;;) {
            const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0) return false;
            if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
            if (!c.head_started) {
                c.head_started = true;
                c.deadline = Clock::now() + options_.read_timeout;
            }
            c.pending.append(buf, static_cast<size_t>(n));
            if (c.pending.size() > options_.max_header_bytes || head_complete(c.pending)) return true;
        }
    }

    void wait_loop() {
        epoll_event events[64];
        for (;;) {
            const int n = ::epoll_wait(epoll_, events, 64, 100);
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            for (int i = 0; i < n; ++i) {
                const int fd = events[i].data.fd;
                const auto it = waiting_.find(fd);
                if (it == waiting_.end()) continue;
                Connection& c = *it->second;
                if (c.draining) {
                    if (drain(c)) continue;
                    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
                    waiting_.erase(it);
                    continue;
                }
                const bool alive = tls_ ? take_tls(c) : take(c);
                const bool complete = head_complete(c.pending);
                const size_t head_bytes = complete ? c.pending.find("\r\n\r\n") + 4 : c.pending.size();
                if (head_bytes > options_.max_header_bytes) {
                    answer(c, 431, "Request Header Fields Too Large");
                    // The client may still be sending its head: discard it for a second, then close
                    // (closing with unread input would reset the connection and could lose the 431).
                    ::shutdown(fd, SHUT_WR);
                    c.draining = true;
                    c.deadline = Clock::now() + std::chrono::seconds(1);
                    continue;
                } else if (complete) {
                    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
                    dispatch(std::move(it->second));
                    waiting_.erase(it);
                    continue;
                } else if (alive) {
                    continue;
                }
                ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
                waiting_.erase(it);
            }
            // Deadlines: an idle connection past idle_timeout, a head not complete within read_timeout.
            const auto now = Clock::now();
            for (auto it = waiting_.begin(); it != waiting_.end();) {
                if (it->second->deadline > now) {
                    ++it;
                    continue;
                }
                if (it->second->head_started && !it->second->draining)
                    answer(*it->second, 408, "Request Timeout");
                ::epoll_ctl(epoll_, EPOLL_CTL_DEL, it->first, nullptr);
                it = waiting_.erase(it);
            }
        }
    }

    const ServerOptions& options_;
    Serve serve_;
    SSL_CTX* tls_;  // HTTPS: the handshake and the head are read here too, without blocking
    ::httplib::ThreadPool workers_;
    int epoll_ = -1;
    int wake_ = -1;
    std::mutex mutex_;
    bool stopping_ = false;
    std::map<int, std::unique_ptr<Connection>> waiting_;
    std::thread waiter_;
};

Server::Server(ServerOptions options) : options_(options) {
    apply_limits(*this, options_);
    set_tcp_nodelay(true);
    // The listen loop owns its task queue; process_and_close_socket and serve run only while it lives.
    new_task_queue = [this] {
        // cpp-httplib listens with a backlog of 5: a burst of connections would overflow it.
        ::listen(svr_sock_, SOMAXCONN);
        connections_ = new Connections(
            options_, [this](std::unique_ptr<Connection> c) { serve(std::move(c)); },
            static_cast<SSL_CTX*>(tls_.get()));
        return connections_;
    };
}

Server::Server(ServerOptions options, const std::string& cert_pem_file, const std::string& key_pem_file)
    : Server(options) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    tls_ = std::shared_ptr<void>(ctx, [](void* p) { SSL_CTX_free(static_cast<SSL_CTX*>(p)); });
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    tls_valid_ = SSL_CTX_use_certificate_chain_file(ctx, cert_pem_file.c_str()) == 1 &&
                 SSL_CTX_use_PrivateKey_file(ctx, key_pem_file.c_str(), SSL_FILETYPE_PEM) == 1 &&
                 SSL_CTX_check_private_key(ctx) == 1;
    ERR_clear_error();
}

Server::~Server() = default;

bool Server::is_valid() const { return tls_valid_; }

bool Server::process_and_close_socket(socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    auto c = std::make_unique<Connection>();
    c->fd = sock;
    c->deadline = Clock::now() + options_.idle_timeout;
    connections_->park(std::move(c));
    return true;
}

void Server::serve(std::unique_ptr<Connection> c) {
    for (;;) {
        if (svr_sock_ == INVALID_SOCKET) return;  // stopping: the connection closes
        ConnectionStream stream(*c, options_);
        body_over_budget = false;
        close_after = false;
        const bool last = c->served + 1 >= options_.max_keep_alive_requests;
        bool closed = false;
        const bool ok = process_request(stream, last, closed, nullptr);
        body_over_budget = false;
        ++c->served;
        if (c->ssl && (!ok || closed || last || close_after)) {
            SSL_shutdown(c->ssl);  // close_notify; the client's input is not worth a worker
            return;
        }
        if (!ok || closed || last || close_after) {
            // A close with unread input would reset the connection and could destroy the answer
            // before the client read it: stop sending, then discard its input until it closes.
            ::shutdown(c->fd, SHUT_WR);
            c->draining = true;
            c->deadline = Clock::now() + std::chrono::seconds(1);
            connections_->park(std::move(c));
            return;
        }
        stream.keep_rest();
        if (head_complete(c->pending) || (c->ssl && SSL_pending(c->ssl) > 0)) continue;  // pipelined: answer it now
        c->head_started = !c->pending.empty();
        c->deadline = Clock::now() + (c->head_started ? options_.read_timeout : options_.idle_timeout);
        connections_->park(std::move(c));
        return;
    }
}

void apply_limits(::httplib::Server& server, const ServerOptions& options) {
    using std::chrono::duration_cast;
    using std::chrono::seconds;
    server.set_payload_max_length(options.max_body_bytes);
    server.set_read_timeout(options.read_timeout);
    server.set_write_timeout(options.write_timeout);
    // cpp-httplib counts its keep-alive timeout in whole seconds.
    server.set_keep_alive_timeout(std::max<time_t>(1, duration_cast<seconds>(options.idle_timeout).count()));
    server.set_keep_alive_max_count(std::max<size_t>(1, options.max_keep_alive_requests));
    const size_t threads = std::max<size_t>(1, options.worker_threads);
    server.new_task_queue = [&server, threads] {
        // cpp-httplib listens with a backlog of 5: a burst of connections would overflow it.
        ::listen(ListeningSocket::of(server), SOMAXCONN);
        return new ::httplib::ThreadPool(threads);
    };

    server.set_pre_routing_handler([options](const ::httplib::Request& req, ::httplib::Response& res) {
        // cpp-httplib's own header line limit is 8 KiB; the total is ours.
        size_t head = req.method.size() + req.target.size() + 12;
        for (const auto& [name, value] : req.headers) {
            if (name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" || name == "LOCAL_PORT")
                continue;
            head += name.size() + value.size() + 4;
        }
        if (head > options.max_header_bytes) {
            res.status = 431;
            res.set_content(error_json(status_text(431), {{"limit", options.max_header_bytes}}), json_type);
            return ::httplib::Server::HandlerResponse::Handled;
        }
        if (req.has_header("Content-Length") &&
            std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > options.max_body_bytes) {
            res.status = 413;
            res.set_content(error_json(status_text(413), {{"limit", options.max_body_bytes}}), json_type);
            res.set_header("Connection", "close");
            return ::httplib::Server::HandlerResponse::Handled;
        }
        // cpp-httplib would inflate a compressed body with no bound on its inflated size.
        if (req.has_header("Content-Encoding") && req.get_header_value("Content-Encoding") != "identity") {
            res.status = 415;
            res.set_content(error_json(status_text(415), {{"detail", "compressed request bodies are not accepted"}}),
                            json_type);
            return ::httplib::Server::HandlerResponse::Handled;
        }
        return ::httplib::Server::HandlerResponse::Unhandled;
    });
    server.set_error_handler(::httplib::Server::HandlerWithResponse([options](const ::httplib::Request&,
                                                                             ::httplib::Response& res) {
        if (res.status == 400 && body_over_budget) res.status = 413;
        if (!res.body.empty()) return ::httplib::Server::HandlerResponse::Unhandled;  // a handler's own answer
        nlohmann::json extra = nlohmann::json::object();
        if (res.status == 413) extra["limit"] = options.max_body_bytes;
        // cpp-httplib's own errors may leave the request body unread: the connection cannot go on.
        res.set_header("Connection", "close");
        res.set_content(error_json(status_text(res.status), extra), json_type);
        return ::httplib::Server::HandlerResponse::Handled;
    }));
    server.set_post_routing_handler([](const ::httplib::Request&, ::httplib::Response& res) {
        close_after = res.get_header_value("Connection") == "close";
        if (close_after) res.headers.erase("Keep-Alive");
    });
    server.set_exception_handler([](const ::httplib::Request& req, ::httplib::Response& res, std::exception_ptr ep) {
        res.headers.clear();
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            if (auto refusal = refusal_for(e)) return send(res, *refusal);
            spdlog::error("{} {}: {}", req.method, req.path, e.what());
        } catch (...) {
            spdlog::error("{} {}: an exception that is not a std::exception", req.method, req.path);
        }
        res.status = 500;
        res.set_content(error_json("internal error"), json_type);
    });
}

RequestView request_view(const ::httplib::Request& request) {
    RequestView view;
    view.method = request.method;
    // request.path is already percent-decoded (%2F became '/'); extractors get the raw target.
    const std::string& target = request.target.empty() ? request.path : request.target;
    const auto q = target.find('?');
    view.path = target.substr(0, q);
    if (q != std::string::npos) view.query = target.substr(q + 1);
    view.host = request.get_header_value("Host");
    view.headers.reserve(request.headers.size());
    for (const auto& [name, value] : request.headers) view.headers.emplace_back(name, value);
    return view;
}

void send(::httplib::Response& response, const TenantRefusal& refusal) {
    response.status = refusal.status;
    response.set_content(refusal.body(), json_type);
}

::httplib::Server::Handler with_tenant(TenantGate& gate, TenantHandler handler, LeaseOptions lease) {
    return [&gate, handler = std::move(handler), lease](const ::httplib::Request& req, ::httplib::Response& res) {
        auto admission = gate.admit(request_view(req), lease);
        if (!admission) return send(res, admission.refusal);
        try {
            handler(req, res, *admission.context);
        } catch (const std::exception& e) {
            auto refusal = refusal_for(e);
            if (!refusal) throw;
            answer_refusal(res, *refusal);
        }
    };
}

::httplib::Server::Handler public_route(::httplib::Server::Handler handler) {
    return [handler = std::move(handler)](const ::httplib::Request& req, ::httplib::Response& res) {
        try {
            handler(req, res);
        } catch (const std::exception& e) {
            auto refusal = refusal_for(e);
            if (!refusal) throw;
            answer_refusal(res, *refusal);
        }
    };
}

::httplib::Server::Handler health_handler(TenantManager& manager, HealthOptions options) {
    return [&manager, options](const ::httplib::Request&, ::httplib::Response& res) {
        const auto report = manager.health_check(options);
        res.status = report.healthy ? 200 : 503;
        res.set_content(to_json(report), json_type);
    };
}

::httplib::Server::Handler metrics_handler(TenantManager& manager) {
    return [&manager](const ::httplib::Request&, ::httplib::Response& res) {
        res.set_content(manager.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    };
}

}  // namespace mt::adapter::httplib
