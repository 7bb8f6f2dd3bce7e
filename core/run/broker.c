/*
 * broker.c - the private mosquitto of a run (see broker.h).
 *
 * The password never appears on a command line: it is written in plain text to
 * a mode-0600 file that `mosquitto_passwd -U` then hashes in place. The broker
 * is started with fork() rather than posix_spawn because the child must set
 * PR_SET_PDEATHSIG (so a killed coordinator never leaves a broker behind). The
 * first start happens before any Paho thread exists; a restart after the
 * broker died happens while they run, which is safe because the child only
 * makes async-signal-safe system calls before exec (no malloc, no locks). It gets its own process
 * group so that the terminal's Ctrl-C reaches the coordinator, which then stops
 * the tasks before the broker.
 */
#include "broker.h"
#include <flowbus/flowbus.h>
#include "log.h"
#include "tmpdirs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct broker {
    pid_t pid;
    int port;
    char dir[128];
    char url[64];
};

static void sleep_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Asks the kernel for a free loopback port. The port is free when this returns;
 * another process could take it before mosquitto binds, which broker__start
 * handles by retrying with a new port. */
static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0)
        goto out;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto out;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        goto out;
    port = ntohs(sa.sin_port);
out:
    if (fd >= 0)
        close(fd);
    return port;
}

static int port_accepts(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = 0;

    if (fd < 0)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* Finds an executable in PATH, then in /usr/sbin and /usr/bin (mosquitto lives
 * in /usr/sbin on Debian, which is not on an ordinary user's PATH). */
static int find_program(const char *name, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    char *save = NULL, *dir;

    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/usr/bin:/usr/local/sbin", path ? path : "");
    for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        if (snprintf(buf, len, "%s/%s", dir, name) < (int)len && access(buf, X_OK) == 0)
            return 1;
    }
    return 0;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    size_t len = strlen(text);
    int ok = 0;

    if (fd < 0)
        return 0;
    ok = write(fd, text, len) == (ssize_t)len;
    if (close(fd) != 0)
        ok = 0;
    return ok;
}

static void tail_log(const char *dir, char *err, size_t errlen)
{
    char path[256], line[512], last[512] = "";
    FILE *f;

    snprintf(path, sizeof path, "%s/mosquitto.log", dir);
    f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (line[0] != '\n')
            snprintf(last, sizeof last, "%s", line);
    fclose(f);
    last[strcspn(last, "\n")] = '\0';
    if (last[0])
        snprintf(err + strlen(err), errlen - strlen(err), " (mosquitto: %s)", last);
}

/* Runs `mosquitto_passwd -U FILE` to hash the plain-text password file in place. */
static int hash_passwords(const char *file, char *err, size_t errlen)
{
    char prog[512];
    pid_t pid;
    int status = 0;

    if (!find_program("mosquitto_passwd", prog, sizeof prog)) {
        snprintf(err, errlen, "mosquitto_passwd not found (install the mosquitto package)");
        return 0;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return 0;
    }
    if (pid == 0) {
        sigset_t none;
        int devnull = open("/dev/null", O_RDWR);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(prog, "mosquitto_passwd", "-U", file, (char *)NULL);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, errlen, "mosquitto_passwd -U failed");
        return 0;
    }
    return 1;
}

static pid_t spawn_broker(const char *prog, const char *conf)
{
    pid_t parent = getpid();
    pid_t pid = fork();

    if (pid != 0)
        return pid;
    /* Child: its own process group, dies with the coordinator, and none of the
     * signals the coordinator blocks (for its signalfd) stay blocked. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
    {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
    }
    execl(prog, "mosquitto", "-c", conf, (char *)NULL);
    _exit(127);
}

/* The broker runs as whoever runs flowbus: started as root, mosquitto would
 * otherwise switch to the "mosquitto" user, which cannot read the run's
 * private directory. */
static const char *user_name(void)
{
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_name ? pw->pw_name : "root";
}

static int reap_nohang(pid_t pid)
{
    int status;
    return waitpid(pid, &status, WNOHANG) == pid;
}

/* Writes the password file (hashed in place) and the ACL into the broker's directory. */
static int write_access(const struct broker *b, const char *passwords, const char *acl, char *err,
                        size_t errlen)
{
    char path[256];

    snprintf(path, sizeof path, "%s/passwd", b->dir);
    if (!write_file(path, passwords, 0600)) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return 0;
    }
    if (!hash_passwords(path, err, errlen))
        return 0;
    snprintf(path, sizeof path, "%s/acl", b->dir);
    if (!write_file(path, acl, 0600)) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return 0;
    }
    return 1;
}

/* What one attempt to start the broker came to. */
enum attempt { ATTEMPT_STARTED, ATTEMPT_EXITED, ATTEMPT_FAILED };

/*
 * One attempt: a free port, the configuration for it, the broker started
 * and waited for. ATTEMPT_EXITED (another process may have taken the port
 * first) is worth another attempt; ATTEMPT_FAILED is not.
 */
static enum attempt try_start(struct broker *b, const char *prog, char *err, size_t errlen)
{
    char conf[1024], confpath[256];
    double deadline;

    b->port = free_port();
    if (b->port < 0) {
        snprintf(err, errlen, "no free loopback port: %s", strerror(errno));
        return ATTEMPT_FAILED;
    }
    snprintf(conf, sizeof conf,
             "# Generated by flowbus for one run; removed when the run ends.\n"
             "listener %d 127.0.0.1\n"
             "user %s\n"
             "allow_anonymous false\n"
             "password_file %s/passwd\n"
             "acl_file %s/acl\n"
             "set_tcp_nodelay true\n"
             "persistence true\n"
             "persistence_location %s/\n"
             "autosave_interval 1\n"
             /*
              * A task whose event queue is full stops reading (back-pressure):
              * its QoS 1 backlog waits here, 100 in flight and the rest queued,
              * so a flood of 20,000+ is held (mosquitto's default, 1000, drops
              * beyond); the bytes bound caps a backlog of large values.
              */
             "max_queued_messages 100000\n"
             "max_queued_bytes 268435456\n"
             "max_inflight_messages 100\n"
             "log_dest file %s/mosquitto.log\n"
             "log_type error\nlog_type warning\n",
             b->port, user_name(), b->dir, b->dir, b->dir, b->dir);
    snprintf(confpath, sizeof confpath, "%s/mosquitto.conf", b->dir);
    if (!write_file(confpath, conf, 0600)) {
        snprintf(err, errlen, "cannot write %s: %s", confpath, strerror(errno));
        return ATTEMPT_FAILED;
    }
    b->pid = spawn_broker(prog, confpath);
    if (b->pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        b->pid = 0;
        return ATTEMPT_FAILED;
    }
    deadline = fb_clock_mono() + 5.0;
    while (fb_clock_mono() < deadline) {
        if (port_accepts(b->port))
            return ATTEMPT_STARTED;
        if (reap_nohang(b->pid)) {
            b->pid = 0;
            snprintf(err, errlen, "mosquitto exited at start");
            tail_log(b->dir, err, errlen);
            return ATTEMPT_EXITED;
        }
        sleep_ms(2);
    }
    snprintf(err, errlen, "mosquitto did not accept connections within 5 s");
    return ATTEMPT_FAILED;
}

struct broker *broker__start(const char *passwords, const char *acl, char *err, size_t errlen)
{
    struct broker *b = calloc(1, sizeof *b);
    char prog[512];
    const char *tmp;
    enum attempt how = ATTEMPT_EXITED;

    err[0] = '\0';
    if (!b) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!find_program("mosquitto", prog, sizeof prog)) {
        snprintf(err, errlen, "mosquitto not found in PATH or /usr/sbin (install the mosquitto package)");
        goto fail;
    }
    tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > sizeof b->dir - 24)
        tmp = "/tmp";
    snprintf(b->dir, sizeof b->dir, "%s/flowbus-broker-XXXXXX", tmp);
    if (!mkdtemp(b->dir)) {
        snprintf(err, errlen, "cannot create a directory in %s: %s", tmp, strerror(errno));
        b->dir[0] = '\0';
        goto fail;
    }
    /* The owner record first: a coordinator killed from here on leaves a directory gc removes. */
    if (!tmpdirs__claim(b->dir)) {
        snprintf(err, errlen, "cannot write the owner record in %s: %s", b->dir, strerror(errno));
        goto fail;
    }
    if (!write_access(b, passwords, acl, err, errlen))
        goto fail;
    for (int attempt = 0; attempt < 3 && how == ATTEMPT_EXITED; attempt++)
        how = try_start(b, prog, err, errlen);
    if (how != ATTEMPT_STARTED)
        goto fail;
    snprintf(b->url, sizeof b->url, "tcp://127.0.0.1:%d", b->port);
    err[0] = '\0';
    return b;
fail:
    broker__stop(b);
    return NULL;
}

const char *broker__url(const struct broker *b)
{
    return b->url;
}

pid_t broker__pid(const struct broker *b)
{
    return b->pid;
}

void broker__stop(struct broker *b)
{
    char path[256];
    const char *files[] = {"passwd", "acl", "mosquitto.conf", "mosquitto.log", "mosquitto.db",
                           "mosquitto.db.new", "owner"};

    if (!b)
        return;
    if (b->pid > 0) {
        double deadline = fb_clock_mono() + 2.0;
        int reaped = 0;
        kill(b->pid, SIGTERM);
        /*
         * mosquitto blocks signals while it waits in epoll_wait (up to 100 ms
         * at a time) and only then sees the SIGTERM; a connection wakes it at
         * once. That was most of a short run's fixed cost (docs/performance.md).
         */
        (void)port_accepts(b->port);
        while (!reaped && fb_clock_mono() < deadline) {
            reaped = reap_nohang(b->pid);
            if (!reaped)
                sleep_ms(2);
        }
        if (!reaped) {
            kill(b->pid, SIGKILL);
            while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    if (b->dir[0]) {
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", b->dir, files[i]);
            unlink(path);
        }
        rmdir(b->dir);
    }
    free(b);
}

int broker__restart(struct broker *b, char *err, size_t errlen)
{
    char prog[512], confpath[256];
    double deadline;

    err[0] = '\0';
    if (!find_program("mosquitto", prog, sizeof prog)) {
        snprintf(err, errlen, "mosquitto not found");
        return 0;
    }
    snprintf(confpath, sizeof confpath, "%s/mosquitto.conf", b->dir);
    b->pid = spawn_broker(prog, confpath);
    if (b->pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        b->pid = 0;
        return 0;
    }
    deadline = fb_clock_mono() + 5.0;
    while (fb_clock_mono() < deadline) {
        if (port_accepts(b->port))
            return 1;
        if (reap_nohang(b->pid)) {
            b->pid = 0;
            snprintf(err, errlen, "mosquitto exited at start");
            tail_log(b->dir, err, errlen);
            return 0;
        }
        sleep_ms(2);
    }
    snprintf(err, errlen, "mosquitto did not accept connections within 5 s");
    return 0;
}

void broker__forget(struct broker *b)
{
    if (b)
        b->pid = 0;
}
