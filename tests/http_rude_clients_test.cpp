// HTTP front doors against rude clients (issue 10, item 8), over real loopback sockets: the
// cpp-httplib adapter's Server, the Beast adapter's Server and the sample service. A body past
// 1 MiB is 413 before the handler runs, a huge head is refused, a slowloris client is cut off after
// the read timeout, 16 keep-alive clients posting plus 64 idle connections do not delay a fresh
// request by a second, and a throwing handler answers 500 with no exception text anywhere.
#include "support/http.hpp"
#include "support/wait.hpp"

#include <mt/adapter/beast.hpp>
#include <mt/adapter/httplib.hpp>
#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_context.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <thread>

using namespace mt::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
namespace adapter = mt::adapter::httplib;
namespace mtb = mt::adapter::beast;
namespace bhttp = boost::beast::http;
using Clock = std::chrono::steady_clock;

namespace {

const std::string secret_text = "secret-exception-text password=hunter2";

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

int connect_loopback(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Sends what the peer takes (it may close early: that is what some tests provoke).
void send_some(int fd, const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
        const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<size_t>(n);
    }
}

// Everything the peer sends until it closes, or until the deadline.
std::string read_until_close(int fd, std::chrono::milliseconds within = 15s) {
    const auto deadline = Clock::now() + within;
    std::string in;
    char buf[4096];
    while (Clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
    }
    return in;
}

int status_of(const std::string& response) {
    return response.rfind("HTTP/1.", 0) == 0 && response.size() > 12 ? std::stoi(response.substr(9, 3)) : 0;
}

// Sends a request with a body of `size` bytes (Content-Length, or chunked) on a raw connection and
// returns the whole answer.
std::string post_body(int port, size_t size, bool chunked) {
    const int fd = connect_loopback(port);
    REQUIRE(fd >= 0);
    std::string head = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n";
    head += chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: " + std::to_string(size) + "\r\n";
    head += "Connection: close\r\n\r\n";
    std::string body(size, 'x');
    if (chunked) {
        std::string framed;
        for (size_t off = 0; off < body.size(); off += 64 * 1024) {
            const size_t n = std::min<size_t>(64 * 1024, body.size() - off);
            char len[32];
            std::snprintf(len, sizeof len, "%zx\r\n", n);
            framed += len + body.substr(off, n) + "\r\n";
        }
        body = framed + "0\r\n\r\n";
    }
    // The writer runs beside the reader: a server that answers early stops reading the body.
    std::thread writer([&] { send_some(fd, head + body); });
    const std::string answer = read_until_close(fd);
    ::shutdown(fd, SHUT_RDWR);
    writer.join();
    ::close(fd);
    return answer;
}

// A client that sends a request head one byte every 50 ms and never finishes it. Returns how long
// the server let it go on (ms) before closing or answering, or -1 after 15 s.
struct Slowloris {
    double cut_after_ms = -1;
    size_t bytes_sent = 0;
    std::string answer;
};
Slowloris slowloris(int port) {
    Slowloris out;
    const int fd = connect_loopback(port);
    REQUIRE(fd >= 0);
    const std::string head = "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    const auto start = Clock::now();
    for (size_t i = 0; ms_since(start) < 15000; ++i) {
        const char byte = i < head.size() ? head[i] : 'a';
        if (::send(fd, &byte, 1, MSG_NOSIGNAL) != 1) break;
        ++out.bytes_sent;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) > 0) {
            out.answer = read_until_close(fd, 2s);
            break;
        }
    }
    if (ms_since(start) < 15000) out.cut_after_ms = ms_since(start);
    ::close(fd);
    return out;
}

// 64 idle connections, 16 keep-alive clients posting 20 tasks each at once, and fresh requests
// (a new connection each) timed while they post and again once they sit idle.
struct Crowd {
    double worst_fresh_busy_ms = 0;
    double worst_fresh_idle_ms = 0;
    int posts_created = 0;
    int fresh_ok = 0;
    std::string failures;  // status (0: no answer) and body of each post that was not 201
};
Crowd crowd(int port) {
    Crowd out;
    std::vector<int> idle;
    for (int i = 0; i < 64; ++i) {
        const int fd = connect_loopback(port);
        REQUIRE(fd >= 0);
        idle.push_back(fd);
    }
    // One answered request before the threads start: cpp-httplib's client parses the status line
    // with a function-local static std::regex built on first use, inside Debian's uninstrumented
    // libcpp-httplib, where TSan cannot see the guard that orders its construction before other
    // threads' use; built here, thread creation orders it.
    REQUIRE(tenant_get(port, "b").status == 200);
    std::vector<std::unique_ptr<httplib::Client>> clients;
    for (int i = 0; i < 16; ++i) {
        clients.push_back(std::make_unique<httplib::Client>("127.0.0.1", port));
        clients.back()->set_keep_alive(true);
        clients.back()->set_read_timeout(30, 0);
    }
    std::atomic<bool> go{false};
    const auto started = Clock::now();
    std::atomic<int> created{0}, finished{0};
    std::mutex failures_mutex;
    std::vector<std::thread> posters;
    for (auto& c : clients)
        posters.emplace_back([&, client = c.get()] {
            while (!go) std::this_thread::yield();
            for (int i = 0; i < 20; ++i) {
                auto r = client->Post("/tasks", {{"X-Tenant-Id", "a"}}, R"({"title":"crowd"})", "application/json");
                if (r && r->status == 201) {
                    ++created;
                } else {
                    std::lock_guard lock(failures_mutex);
                    out.failures += "post " + std::to_string(i) + " after " + std::to_string(ms_since(started)) + " ms: " +
                                    (r ? std::to_string(r->status) + " " + r->body : "no answer: " + httplib::to_string(r.error())) + "\n";
                }
            }
            ++finished;
        });
    auto fresh = [&](double& worst) {
        const auto t = Clock::now();
        const auto reply = tenant_get(port, "b");
        worst = std::max(worst, ms_since(t));
        if (reply.status == 200) ++out.fresh_ok;
    };
    go = true;
    for (int i = 0; i < 5 && finished < 16; ++i) fresh(out.worst_fresh_busy_ms);
    for (auto& t : posters) t.join();
    // Now 16 keep-alive connections and 64 idle ones are open and silent.
    for (int i = 0; i < 5; ++i) fresh(out.worst_fresh_idle_ms);
    out.posts_created = created;
    for (int fd : idle) ::close(fd);
    return out;
}

// The cpp-httplib adapter's Server with test routes and the tenant routes of the sample.
class HttplibFrontDoor {
public:
    explicit HttplibFrontDoor(const Project& p, adapter::ServerOptions options = {})
        : kernel_(manifest_of(p)), manager_(kernel_), gate_(manager_), server_(options) {
        server_.Post("/echo", [this](const httplib::Request& req, httplib::Response& res) {
            ++handled_;
            res.set_content(std::to_string(req.body.size()), "text/plain");
        });
        server_.Get("/ping", [this](const httplib::Request&, httplib::Response& res) {
            ++handled_;
            res.set_content("pong", "text/plain");
        });
        server_.Get("/throw", [](const httplib::Request&, httplib::Response& res) {
            res.set_header("X-Half-Done", "yes");
            throw std::runtime_error(secret_text);
        });
        server_.Get("/throw-int", [](const httplib::Request&, httplib::Response&) { throw 42; });
        server_.Get("/invalid-parameter", adapter::with_tenant(gate_, [](const httplib::Request&, httplib::Response&,
                                                                         mt::TenantContext& ctx) {
            throw mt::InvalidParameter(ctx.tenant_id, 2, "contains a NUL character (" + secret_text + ")");
        }));
        server_.Get("/tasks", adapter::with_tenant(gate_, [](const httplib::Request&, httplib::Response& res,
                                                            mt::TenantContext& ctx) {
            res.set_content(ctx.lease.query("SELECT count(*) FROM tasks")[0][0].c_str(), "text/plain");
        }));
        server_.Post("/tasks", adapter::with_tenant(gate_, [](const httplib::Request& req, httplib::Response& res,
                                                             mt::TenantContext& ctx) {
            const auto title = nlohmann::json::parse(req.body).at("title").get<std::string>();
            ctx.lease.query("INSERT INTO tasks (title) VALUES ($1)", {title});
            res.status = 201;
            res.set_content("{}", "application/json");
        }));
        port_ = server_.bind_to_any_port("127.0.0.1");
        REQUIRE(port_ > 0);
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        REQUIRE(poll_until([this] { return server_.is_running(); }, kDefaultDeadline, 1ms));
    }
    ~HttplibFrontDoor() {
        server_.stop();
        thread_.join();
    }
    int port() const { return port_; }
    int handled() const { return handled_; }

private:
    mt::Kernel kernel_;
    mt::TenantManager manager_;
    mt::TenantGate gate_;
    adapter::Server server_;
    std::atomic<int> handled_{0};
    int port_ = 0;
    std::thread thread_;
};

// The same routes on the Beast adapter's Server.
class BeastFrontDoor {
public:
    explicit BeastFrontDoor(const Project& p, mtb::ServerOptions options = {})
        : kernel_(manifest_of(p)), manager_(kernel_), gate_(manager_),
          server_([this](const mtb::Request& req) { return route(req); }, options) {
        port_ = server_.listen("127.0.0.1", 0);
        thread_ = std::thread([this] { server_.run(); });
    }
    ~BeastFrontDoor() {
        server_.stop();
        thread_.join();
    }
    int port() const { return port_; }
    int handled() const { return handled_; }

private:
    mtb::Response route(const mtb::Request& req) {
        const std::string target(req.target().data(), req.target().size());
        if (target == "/echo" || target == "/ping") {
            ++handled_;
            return mtb::make_response(req, bhttp::status::ok, target == "/ping" ? "pong" : std::to_string(req.body().size()),
                                      "text/plain");
        }
        if (target == "/throw") throw std::runtime_error(secret_text);
        if (target == "/throw-int") throw 42;
        if (target == "/invalid-parameter")
            return mtb::with_tenant(gate_, req, [](const mtb::Request&, mt::TenantContext& ctx) -> mtb::Response {
                throw mt::InvalidParameter(ctx.tenant_id, 2, "contains a NUL character (" + secret_text + ")");
            });
        if (target == "/tasks" && req.method() == bhttp::verb::post)
            return mtb::with_tenant(gate_, req, [](const mtb::Request& r, mt::TenantContext& ctx) {
                const auto title = nlohmann::json::parse(r.body()).at("title").get<std::string>();
                ctx.lease.query("INSERT INTO tasks (title) VALUES ($1)", {title});
                return mtb::make_response(r, bhttp::status::created, "{}");
            });
        if (target == "/tasks")
            return mtb::with_tenant(gate_, req, [](const mtb::Request& r, mt::TenantContext& ctx) {
                return mtb::make_response(r, bhttp::status::ok, ctx.lease.query("SELECT count(*) FROM tasks")[0][0].c_str(),
                                          "text/plain");
            });
        return mtb::make_response(req, bhttp::status::not_found, R"({"error":"no such route"})");
    }

    mt::Kernel kernel_;
    mt::TenantManager manager_;
    mt::TenantGate gate_;
    std::atomic<int> handled_{0};
    mtb::Server server_;
    int port_ = 0;
    std::thread thread_;
};

void http_project(Project& p) {
    configure_http(p);
    tenants_with_tasks(p, {"a", "b"});
}

template <class FrontDoor>
void body_limits(const std::string& name) {
    Project p;
    http_project(p);
    FrontDoor door(p);
    SECTION(name + ": exactly 1 MiB is accepted") {
        const auto answer = post_body(door.port(), 1024 * 1024, false);
        CHECK(status_of(answer) == 200);
        CHECK(answer.substr(answer.find("\r\n\r\n") + 4) == std::to_string(1024 * 1024));
        CHECK(door.handled() == 1);
    }
    SECTION(name + ": 1 MiB + 1 with Content-Length is 413 and the handler never runs") {
        const auto answer = post_body(door.port(), 1024 * 1024 + 1, false);
        CHECK(status_of(answer) == 413);
        CHECK_THAT(answer, Contains(R"("error":"request body too large")"));
        CHECK(door.handled() == 0);
    }
    SECTION(name + ": a chunked body past 1 MiB is 413 and the handler never runs") {
        const auto answer = post_body(door.port(), 2 * 1024 * 1024, true);
        CHECK(status_of(answer) == 413);
        CHECK(door.handled() == 0);
    }
}

template <class FrontDoor>
void head_limits() {
    Project p;
    http_project(p);
    FrontDoor door(p);
    const int fd = connect_loopback(door.port());
    REQUIRE(fd >= 0);
    std::thread writer([&] {
        send_some(fd, "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(1024 * 1024, 'h') + "\r\n\r\n");
    });
    const auto huge = read_until_close(fd);
    ::shutdown(fd, SHUT_RDWR);
    writer.join();
    ::close(fd);
    CHECK(status_of(huge) == 431);

    std::string many;
    for (int i = 0; i < 40; ++i) many += "X-Header-" + std::to_string(i) + ": " + std::string(500, 'm') + "\r\n";
    const auto many_reply = raw_get(door.port(), "/ping", many);
    CHECK(many_reply.status == 431);
    CHECK(door.handled() == 0);
    CHECK(raw_get(door.port(), "/ping", "X-Fine: " + std::string(4000, 'f') + "\r\n").status == 200);
}

template <class FrontDoor, class Options>
void slow_client() {
    Project p;
    http_project(p);
    Options options;
    options.read_timeout = 1s;
    options.idle_timeout = 1s;
    FrontDoor door(p, options);
    const auto slow = slowloris(door.port());
    INFO("bytes sent: " << slow.bytes_sent << ", answer: " << slow.answer);
    REQUIRE(slow.cut_after_ms >= 0);  // cut off at all (within 15 s)
    std::cout << "figure: slowloris cut off after " << slow.cut_after_ms << " ms (read timeout 1000 ms)\n";
    CHECK(slow.cut_after_ms >= 900);
    CHECK(slow.cut_after_ms < 3000);
    CHECK(slow.bytes_sent > 10);
    CHECK(door.handled() == 0);
    // A connection that never sends anything goes after the idle timeout.
    const int fd = connect_loopback(door.port());
    REQUIRE(fd >= 0);
    const auto start = Clock::now();
    const auto nothing = read_until_close(fd, 10s);
    const double idle_ms = ms_since(start);
    ::close(fd);
    CHECK(nothing.empty());
    CHECK(idle_ms >= 900);
    CHECK(idle_ms < 3000);
}

std::string read_raw(int port, const std::string& path) {
    const int fd = connect_loopback(port);
    REQUIRE(fd >= 0);
    send_some(fd, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    const auto answer = read_until_close(fd);
    ::close(fd);
    return answer;
}

template <class FrontDoor>
void throwing_handlers() {
    Project p;
    http_project(p);
    FrontDoor door(p);
    for (const std::string& path : std::vector<std::string>{"/throw", "/throw-int"}) {
        INFO(path);
        const auto raw = read_raw(door.port(), path);
        CHECK(status_of(raw) == 500);
        CHECK(raw.substr(raw.find("\r\n\r\n") + 4) == R"({"error":"internal error"})");
        CHECK(raw.find("hunter2") == std::string::npos);
        CHECK(raw.find("secret-exception-text") == std::string::npos);
        CHECK(raw.find("EXCEPTION_WHAT") == std::string::npos);
        CHECK(raw.find("X-Half-Done") == std::string::npos);
    }
    const auto invalid = raw_get(door.port(), "/invalid-parameter", "X-Tenant-Id: a\r\n");
    CHECK(invalid.status == 400);
    const std::string expected =
        R"j({"detail":"parameter $2 cannot be stored as text (an embedded NUL character or invalid UTF-8)","error":"invalid parameter"})j";
    CHECK(invalid.body == expected);
}

template <class FrontDoor>
void crowded(const std::string& name) {
    Project p;
    http_project(p);
    FrontDoor door(p);  // default options: 8 worker threads
    const auto c = crowd(door.port());
    std::cout << "figure: " << name << ": fresh request worst " << c.worst_fresh_busy_ms
              << " ms while 16 keep-alive clients post, " << c.worst_fresh_idle_ms
              << " ms with them and 64 more connections idle\n";
    INFO("failed posts:\n" << c.failures);
    CHECK(c.posts_created == 16 * 20);
    CHECK(c.fresh_ok >= 5);
    // The requirement is 1 s with the default settings; a healthy run takes a few milliseconds.
    CHECK(c.worst_fresh_busy_ms < 1000);
    CHECK(c.worst_fresh_idle_ms < 1000);
}

}  // namespace

TEST_CASE("httplib front door: request bodies past 1 MiB are 413 and never reach the handler", "[http][rude][pg]") {
    body_limits<HttplibFrontDoor>("httplib");
}

TEST_CASE("beast front door: request bodies past 1 MiB are 413 and never reach the handler", "[http][rude][pg]") {
    body_limits<BeastFrontDoor>("beast");
}

TEST_CASE("httplib front door: a huge header or too many headers are 431", "[http][rude][pg]") {
    head_limits<HttplibFrontDoor>();
}

TEST_CASE("beast front door: a huge header or too many headers are 431", "[http][rude][pg]") {
    head_limits<BeastFrontDoor>();
}

TEST_CASE("httplib front door: a slowloris client is cut off after the read timeout, an idle one after the idle timeout",
          "[http][rude][pg][serial]") {
    slow_client<HttplibFrontDoor, adapter::ServerOptions>();
}

TEST_CASE("beast front door: a slowloris client is cut off after the read timeout, an idle one after the idle timeout",
          "[http][rude][pg][serial]") {
    slow_client<BeastFrontDoor, mtb::ServerOptions>();
}

TEST_CASE("httplib front door: a throwing handler answers 500 with no exception text, InvalidParameter 400",
          "[http][rude][pg]") {
    throwing_handlers<HttplibFrontDoor>();
}

TEST_CASE("beast front door: a throwing handler answers 500 with no exception text, InvalidParameter 400",
          "[http][rude][pg]") {
    throwing_handlers<BeastFrontDoor>();
}

TEST_CASE("httplib front door: 16 keep-alive clients and 64 idle connections do not delay a fresh request by 1 s",
          "[http][rude][pg][serial]") {
    crowded<HttplibFrontDoor>("httplib");
}

TEST_CASE("beast front door: 16 keep-alive clients and 64 idle connections do not delay a fresh request by 1 s",
          "[http][rude][pg][serial]") {
    crowded<BeastFrontDoor>("beast");
}

TEST_CASE("the defaults are 1 MiB bodies, 16 KiB heads, 5 s timeouts and 8 workers in both adapters", "[http]") {
    const adapter::ServerOptions h;
    const mtb::ServerOptions b;
    for (const auto& [body, head, read, write, idle, workers] :
         {std::tuple{h.max_body_bytes, h.max_header_bytes, h.read_timeout, h.write_timeout, h.idle_timeout, h.worker_threads},
          std::tuple{b.max_body_bytes, b.max_header_bytes, b.read_timeout, b.write_timeout, b.idle_timeout, b.worker_threads}}) {
        CHECK(body == 1024 * 1024);
        CHECK(head == 16 * 1024);
        CHECK(read == 5s);
        CHECK(write == 5s);
        CHECK(idle == 5s);
        CHECK(workers == 8);
    }
}

namespace {

// The sample service (samples/http-service) as a child process on a free loopback port, stopped
// with SIGTERM when the object goes away.
class SampleService {
public:
    explicit SampleService(const Project& p) {
        const std::string binary = std::string(MT_BINARY_DIR) + "/samples/http-service/http-service";
        const std::string shell = "exec " + shell_quote(binary) + " -c " +
                                  shell_quote((p.dir() / "multitenant.ini").string()) + " --listen 127.0.0.1:0 >" +
                                  shell_quote((dir_ / "out").string()) + " 2>" + shell_quote((dir_ / "err").string()) +
                                  " </dev/null";
        pid_ = spawn_shell(shell);
        REQUIRE(pid_ >= 0);
        const std::string marker = "listening on 127.0.0.1:";
        poll_until([&] {
            const std::string out = read_file(dir_ / "out");
            if (const auto at = out.find(marker); at != std::string::npos && out.find('\n', at) != std::string::npos) {
                port_ = std::stoi(out.substr(at + marker.size()));
                return true;
            }
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) pid_ = 0;
            return pid_ == 0;
        });
        if (pid_ == 0) FAIL("http-service exited before listening: " << read_file(dir_ / "err"));
        if (port_ == 0)
            FAIL("http-service did not listen within " << kDefaultDeadline.count() << " ms: " << read_file(dir_ / "err"));
    }
    ~SampleService() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        if (!poll_until([this] { return ::waitpid(pid_, nullptr, WNOHANG) != 0; }, 10s)) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    int port() const { return port_; }
    std::string err() const { return read_file(dir_ / "err"); }

private:
    TempDir dir_;
    pid_t pid_ = 0;
    int port_ = 0;
};

}  // namespace

TEST_CASE("sample service: 16 keep-alive clients and 64 idle connections do not delay a fresh request by 1 s",
          "[http][rude][sample][pg][serial]") {
    Project p;
    http_project(p);
    SampleService sample(p);  // default --threads 8
    const auto c = crowd(sample.port());
    std::cout << "figure: sample: fresh request worst " << c.worst_fresh_busy_ms << " ms while 16 keep-alive clients post, "
              << c.worst_fresh_idle_ms << " ms with them and 64 more connections idle\n";
    INFO("failed posts:\n" << c.failures);
    CHECK(c.posts_created == 16 * 20);
    CHECK(c.fresh_ok >= 5);
    CHECK(c.worst_fresh_busy_ms < 1000);
    CHECK(c.worst_fresh_idle_ms < 1000);
    // 1 MiB + 1 is refused before the handler: nothing stored, and the answer says why.
    const auto big = post_body(sample.port(), 1024 * 1024 + 1, false);
    CHECK(status_of(big) == 413);
}

// Needs the kernel's refusal of such parameters (mt::InvalidParameter, issue 10 item 6): until then
// libpq cuts the title at the NUL and the sample answers 201 with an empty title.
TEST_CASE("sample service: POST /tasks with a NUL in the title is 400 naming the parameter and stores nothing",
          "[http][sample][pg]") {
    Project p;
    http_project(p);
    SampleService sample(p);
    const auto reply = http_post(sample.port(), "/tasks", R"({"title":"\u0000x"})", {{"X-Tenant-Id", "a"}});
    CHECK(reply.status == 400);
    CHECK(reply.error() == "invalid parameter");
    CHECK_THAT(reply.body, Contains("parameter $1"));
    pqxx::connection c(p.url());
    pqxx::nontransaction tx(c);
    CHECK(tx.exec1("SELECT count(*) FROM tenant_a.tasks")[0].as<int>() == 1);  // the first task only
    const auto thrown = http_get(sample.port(), "/tasks", {{"X-Tenant-Id", "a"}});
    CHECK(thrown.status == 200);
}

// Why the adapters have their own servers: plain cpp-httplib gives each connection a thread from
// its pool until the connection's keep-alive timeout, so 64 silent connections starve 8 threads.
// This is the failure the tests above would catch.
TEST_CASE("a plain httplib::Server with 8 threads does not answer within 1 s behind 64 idle connections", "[http][rude][serial]") {
    httplib::Server plain;
    plain.new_task_queue = [] { return new httplib::ThreadPool(8); };
    plain.Get("/ping", [](const httplib::Request&, httplib::Response& res) { res.set_content("pong", "text/plain"); });
    const int port = plain.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    std::thread loop([&] { plain.listen_after_bind(); });
    CHECK(poll_until([&] { return plain.is_running(); }, kDefaultDeadline, 1ms));  // not REQUIRE: loop must be joined
    std::vector<int> idle;
    for (int i = 0; i < 64; ++i) idle.push_back(connect_loopback(port));
    {
        httplib::Client client("127.0.0.1", port);
        client.set_read_timeout(1, 0);
        client.set_connection_timeout(1, 0);
        const auto start = Clock::now();
        const auto reply = client.Get("/ping");
        const double waited = ms_since(start);
        std::cout << "figure: plain httplib::Server (8 threads, 64 idle connections): "
                  << (reply ? "answered after " + std::to_string(waited) + " ms" : "no answer within 1 s") << "\n";
        CHECK_FALSE(reply);
    }
    for (int fd : idle) ::close(fd);  // lets its threads go, so that stop() returns
    plain.stop();
    loop.join();
}
