// A long-running child process of a test (mtctl serve, prometheus) with stdout and stderr in
// files; stopped when the object goes away, also when the test fails half-way.
#pragma once

#include "support/pg.hpp"
#include "support/wait.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

namespace mt::test {

class Daemon {
public:
    Daemon(const std::string& command_line, const std::filesystem::path& cwd) {
        const std::string shell = "exec " + command_line + " >" + shell_quote((dir_ / "out").string()) + " 2>" +
                                  shell_quote((dir_ / "err").string()) + " </dev/null";
        pid_ = spawn_shell(shell, cwd);
        REQUIRE(pid_ >= 0);
    }
    ~Daemon() { stop(SIGKILL); }
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    std::string out() const { return read_file(dir_ / "out"); }
    std::string err() const { return read_file(dir_ / "err"); }

    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == 0) return true;
        exit_code_ = r == pid_ ? (WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) : -1;
        pid_ = 0;
        return false;
    }

    pid_t pid() const { return pid_; }

    // Waits for the process to exit on its own and returns its exit status (128 + signal when
    // killed by one); fails the test when it still runs after `within`.
    int wait(std::chrono::milliseconds within = kDefaultDeadline) {
        if (!poll_until([&] { return !running(); }, within))
            FAIL("still running after " << within.count() << " ms; its stderr so far:\n" << err());
        return exit_code_;
    }

    // Sends `signal`, waits up to 10 s for the exit (then SIGKILL) and returns the exit status
    // (128 + signal when killed by one).
    int stop(int signal = SIGTERM) {
        if (!running()) return exit_code_;
        ::kill(pid_, signal);
        if (!poll_until([&] { return !running(); }, std::chrono::seconds(10))) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
            exit_code_ = 128 + SIGKILL;
            pid_ = 0;
        }
        return exit_code_;
    }

private:
    TempDir dir_;
    pid_t pid_ = 0;
    int exit_code_ = -1;
};

}  // namespace mt::test
