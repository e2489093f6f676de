#include <mt/adapter/beast.hpp>

#include <mt/base/errors.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <optional>

namespace mt::adapter::beast {

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string text(boost::beast::string_view s) { return std::string(s.data(), s.size()); }

// 503 for database unavailability, 400 for a parameter PostgreSQL cannot hold.
std::optional<TenantRefusal> refusal_for(const std::exception& e) {
    if (is_database_unavailable(e)) return unavailable_refusal(e);
    return invalid_parameter_refusal(e);
}

// An answer to a request that could not be read whole (no request object to take the version from).
Response error_response(http::status status, const std::string& error, std::optional<size_t> limit = {}) {
    nlohmann::json j{{"error", error}};
    if (limit) j["limit"] = *limit;
    Response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(false);
    res.body() = j.dump();
    res.prepare_payload();
    return res;
}

// One connection: wait for a request (idle_timeout), read it (read_timeout, header and body limits),
// hand it to a worker, write the answer (write_timeout), and again while keep-alive allows.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, const ServerOptions& options, const Server::Handler& handler, net::thread_pool& workers)
        : stream_(std::move(socket)), idle_timer_(stream_.get_executor()), options_(options), handler_(handler),
          workers_(workers) {}

    void start() { wait_for_request(); }

private:
    void wait_for_request() {
        if (buffer_.size() > 0) return read_request();  // a pipelined request is here already
        // An idle connection holds no thread: an asynchronous wait for readability with a timer.
        idle_timer_.expires_after(options_.idle_timeout);
        idle_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec) self->stream_.socket().cancel();
        });
        stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
            self->idle_timer_.cancel();
            if (ec) return self->close();
            self->read_request();
        });
    }

    void read_request() {
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(std::min<size_t>(options_.max_header_bytes, UINT32_MAX)));
        parser_->body_limit(options_.max_body_bytes);
        stream_.expires_after(options_.read_timeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](boost::system::error_code ec, size_t) { self->on_read(ec); });
    }

    void on_read(boost::system::error_code ec) {
        stream_.expires_never();
        if (ec == http::error::body_limit)
            return write(error_response(http::status::payload_too_large, "request body too large", options_.max_body_bytes), true);
        if (ec == http::error::header_limit)
            return write(error_response(http::status::request_header_fields_too_large, "request header fields too large",
                                        options_.max_header_bytes),
                         true);
        if (ec) return close();
        auto request = std::make_shared<Request>(parser_->release());
        ++served_;
        const bool last = served_ >= options_.max_keep_alive_requests;
        net::post(workers_, [self = shared_from_this(), request, last] {
            Response res = self->answer(*request);
            if (last) res.keep_alive(false);
            net::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
                const bool close = res.need_eof();
                self->write(std::move(res), close);
            });
        });
    }

    Response answer(const Request& request) {
        try {
            return handler_(request);
        } catch (const std::exception& e) {
            if (auto refusal = refusal_for(e)) return refusal_response(request, *refusal);
            spdlog::error("{} {}: {}", text(request.method_string()), text(request.target()), e.what());
        } catch (...) {
            spdlog::error("{} {}: an exception that is not a std::exception", text(request.method_string()),
                          text(request.target()));
        }
        return make_response(request, http::status::internal_server_error, R"({"error":"internal error"})");
    }

    void write(Response res, bool close_after) {
        auto message = std::make_shared<Response>(std::move(res));
        stream_.expires_after(options_.write_timeout);
        http::async_write(stream_, *message,
                          [self = shared_from_this(), message, close_after](boost::system::error_code ec, size_t) {
                              self->stream_.expires_never();
                              if (ec || close_after) return self->close();
                              self->wait_for_request();
                          });
    }

    // Stops sending, then discards the client's input until it closes (at most a second): a close
    // with unread input would reset the connection and could destroy the answer before it was read.
    void close() {
        boost::system::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec) {
            stream_.socket().close(ec);
            return;
        }
        stream_.expires_after(std::chrono::seconds(1));
        drain();
    }

    void drain() {
        stream_.async_read_some(net::buffer(discard_), [self = shared_from_this()](boost::system::error_code ec, size_t) {
            if (ec) return self->close_now();
            self->drain();
        });
    }

    void close_now() {
        boost::system::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        stream_.socket().close(ec);
    }

    boost::beast::tcp_stream stream_;
    net::steady_timer idle_timer_;
    boost::beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    const ServerOptions& options_;
    const Server::Handler& handler_;
    net::thread_pool& workers_;
    size_t served_ = 0;
    std::array<char, 16 * 1024> discard_{};
};

}  // namespace

struct Server::State {
    State(Handler h, ServerOptions o)
        : handler(std::move(h)), options(o), workers(std::max<size_t>(1, o.worker_threads)) {}
    Handler handler;
    ServerOptions options;
    net::io_context io{1};
    tcp::acceptor acceptor{io};
    net::thread_pool workers;

    void accept() {
        acceptor.async_accept(net::make_strand(io), [this](boost::system::error_code ec, tcp::socket socket) {
            if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
            if (!ec) {
                socket.set_option(tcp::no_delay(true), ec);
                std::make_shared<Session>(std::move(socket), options, handler, workers)->start();
            }
            accept();
        });
    }
};

Server::Server(Handler handler, ServerOptions options)
    : state_(std::make_unique<State>(std::move(handler), options)) {}

Server::~Server() {
    stop();
    state_->workers.join();
}

unsigned short Server::listen(const std::string& host, unsigned short port) {
    boost::system::error_code ec;
    const auto address = net::ip::make_address(host, ec);
    if (ec) throw UsageError("cannot listen on " + host + ": not an IP address");
    const tcp::endpoint endpoint{address, port};
    auto& acceptor = state_->acceptor;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw UsageError("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
    return acceptor.local_endpoint().port();
}

void Server::run() {
    state_->accept();
    state_->io.run();
}

void Server::stop() {
    net::post(state_->io, [s = state_.get()] {
        boost::system::error_code ec;
        s->acceptor.close(ec);
        s->io.stop();
    });
}

RequestView request_view(const Request& request) {
    RequestView view;
    view.method = text(request.method_string());
    const std::string target = text(request.target());
    const auto q = target.find('?');
    view.path = target.substr(0, q);
    if (q != std::string::npos) view.query = target.substr(q + 1);
    view.host = text(request[http::field::host]);
    for (const auto& field : request) view.headers.emplace_back(text(field.name_string()), text(field.value()));
    return view;
}

Response make_response(const Request& request, http::status status, std::string body, const std::string& content_type) {
    Response res{status, request.version()};
    res.set(http::field::content_type, content_type);
    res.keep_alive(request.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

Response refusal_response(const Request& request, const TenantRefusal& refusal) {
    return make_response(request, static_cast<http::status>(refusal.status), refusal.body());
}

Response with_tenant(TenantGate& gate, const Request& request, const TenantHandler& handler, LeaseOptions lease) {
    auto admission = gate.admit(request_view(request), lease);
    if (!admission) return refusal_response(request, admission.refusal);
    try {
        return handler(request, *admission.context);
    } catch (const std::exception& e) {
        auto refusal = refusal_for(e);
        if (!refusal) throw;
        return refusal_response(request, *refusal);
    }
}

Response public_route(const Request& request, const PublicHandler& handler) {
    try {
        return handler(request);
    } catch (const std::exception& e) {
        auto refusal = refusal_for(e);
        if (!refusal) throw;
        return refusal_response(request, *refusal);
    }
}

Response health_response(TenantManager& manager, const Request& request, HealthOptions options) {
    const auto report = manager.health_check(options);
    return make_response(request, report.healthy ? http::status::ok : http::status::service_unavailable,
                         to_json(report));
}

Response metrics_response(TenantManager& manager, const Request& request) {
    return make_response(request, http::status::ok, manager.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace mt::adapter::beast
