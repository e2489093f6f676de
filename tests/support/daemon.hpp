// A long-running child process of a test (mtctl serve, prometheus) with stdout and stderr in
// files; stopped when the object goes away, also when the test fails half-way.
#pragma once

#include "support/pg.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

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

    // Sends `signal`, waits up to 10 s for the exit (then SIGKILL) and returns the exit status
    // (128 + signal when killed by one).
    int stop(int signal = SIGTERM) {
        if (!running()) return exit_code_;
        ::kill(pid_, signal);
        for (int i = 0; i < 500 && running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (running()) {
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
