/* PID 1 of a warm untrusted sandbox, compiled: the same job as _supervisor.py
 * without a Python interpreter's start (about 6 ms of CPU per box).
 *
 * Compiled once per sandbox factory by the runtime root filesystem's own gcc, in
 * a sandbox (see compiled.py); the host never runs it. Arguments: the descriptors
 * REQUEST RESULT STDOUT STDERR.
 *
 * First of all it makes itself non-dumpable: the program runs as the same uid,
 * and a dumpable PID 1 would let it take this process's descriptors
 * (pidfd_getfd) or rewrite its memory (/proc/1/mem) and forge the result. The
 * program gets dumpable back at its exec, as any process.
 *
 * Protocol: writes {"ready": 1} (a JSON line) on RESULT; reads one request from
 * REQUEST up to EOF: a sequence of strings, each a 4-byte little-endian length
 * then its bytes: the deadline D (seconds), N, N argv strings, M, M environment strings "K=V", the stdin
 * file ("" for /dev/null), merge_stderr ("0" or "1"), R, then R triples (rlimit
 * name, soft, hard) in decimal. Forks and execs the program with those rlimits
 * and descriptors, waits for it and writes one JSON line {"wall", "maxrss_kb",
 * "exit_code"|"signal", "exec_error"}, then exits; as PID 1 of the pid namespace
 * its exit makes the kernel kill whatever the program left behind. EOF on
 * REQUEST before any request (the host went away) also ends it, and so does D
 * seconds after the fork (a backstop: the host normally kills the run first).
 *
 * Fork-server mode ("zygote CONTROL SECCOMP BOX_BYTES TMP_BYTES"): the same job
 * as _zygote.py for programs that are exec'd, without an interpreter to fork.
 * Started once by bubblewrap (see argv.py: CAP_SYS_ADMIN, CAP_NET_ADMIN and
 * CAP_SETPCAP in its own user namespace only, no seccomp filter of its own), it
 * keeps the filter read from SECCOMP and, for each b"box" message on CONTROL (a
 * SOCK_SEQPACKET socket carrying five descriptors: INFO, REQUEST, RESULT,
 * STDOUT, STDERR), forks a child that makes new mount, network, ipc, uts and pid
 * namespaces and forks the box's PID 1. PID 1 mounts a fresh /proc and size-capped
 * tmpfs on /box, /tmp and /dev/shm, brings up its loopback, drops every
 * capability (bounding and ambient sets too), sets no_new_privs, becomes
 * non-dumpable and sends b"ready" on INFO (the kernel attaches its pid for the
 * host, SCM_CREDENTIALS) or b"error: WHY". It then serves one request as above,
 * without the {"ready": 1} line, under the seccomp filter, which it installs on
 * itself once the request is read, so the program inherits it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

extern char **environ;

struct str {
    const char *p;
    uint32_t n;
};

static const unsigned char *cur, *end;
static int malformed;

static struct str next(void) {
    struct str s = {"", 0};
    uint32_t n;
    if (malformed || end - cur < 4) {
        malformed = 1;
        return s;
    }
    n = (uint32_t)cur[0] | (uint32_t)cur[1] << 8 | (uint32_t)cur[2] << 16 | (uint32_t)cur[3] << 24;
    cur += 4;
    if ((size_t)(end - cur) < n) {
        malformed = 1;
        return s;
    }
    s.p = (const char *)cur;
    s.n = n;
    cur += n;
    return s;
}

/* A NUL-terminated copy; *bad is set when the string holds a NUL byte. */
static char *cstr(struct str s, int *bad) {
    char *c = malloc(s.n + 1);
    if (!c) _exit(125);
    memcpy(c, s.p, s.n);
    c[s.n] = 0;
    if (strlen(c) != s.n) *bad = 1;
    return c;
}

static long long number(struct str s) {
    int bad = 0;
    char *c = cstr(s, &bad), *stop;
    long long v = strtoll(c, &stop, 10);
    if (bad || *c == 0 || *stop != 0) malformed = 1;
    free(c);
    return v;
}

static void put(int fd, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        buf += w;
        n -= (size_t)w;
    }
}

static int rlimit_of(struct str name) {
    static const struct {
        const char *name;
        int resource;
    } known[] = {{"CPU", RLIMIT_CPU},       {"STACK", RLIMIT_STACK}, {"FSIZE", RLIMIT_FSIZE},
                 {"NOFILE", RLIMIT_NOFILE}, {"CORE", RLIMIT_CORE},   {"NPROC", RLIMIT_NPROC},
                 {"AS", RLIMIT_AS},         {"DATA", RLIMIT_DATA}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == name.n && memcmp(known[i].name, name.p, name.n) == 0)
            return known[i].resource;
    return -1;
}

static void fail(int err_w, const char *what, const char *detail) {
    char msg[4096];
    int n = snprintf(msg, sizeof msg, "%s: %s", what, detail);
    if (n > 0) put(err_w, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    _exit(127);
}

static void child(int out_fd, int err_fd, int err_w) {
    int bad = 0;
    long long argc, envc, nrl;
    char **argv, **envp, *stdin_path;
    int merge;
    sigset_t none;
    signal(SIGINT, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGXFSZ, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    argc = number(next());
    if (malformed || argc < 1 || argc > 1 << 20) fail(err_w, "TypeError", "malformed request");
    argv = calloc((size_t)argc + 1, sizeof *argv);
    for (long long i = 0; i < argc; i++) argv[i] = cstr(next(), &bad);
    envc = number(next());
    if (malformed || envc < 0 || envc > 1 << 20) fail(err_w, "TypeError", "malformed request");
    envp = calloc((size_t)envc + 1, sizeof *envp);
    for (long long i = 0; i < envc; i++) envp[i] = cstr(next(), &bad);
    stdin_path = cstr(next(), &bad);
    merge = number(next()) != 0;
    nrl = number(next());
    if (malformed || !argv || !envp) fail(err_w, "TypeError", "malformed request");
    if (bad) fail(err_w, "ValueError", "embedded null byte");
    int in_fd = open(*stdin_path ? stdin_path : "/dev/null", O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (in_fd < 0) fail(err_w, "OSError", strerror(errno));
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(merge ? out_fd : err_fd, 2) < 0)
        fail(err_w, "OSError", strerror(errno));
    for (long long i = 0; i < nrl; i++) {
        struct str name = next();
        struct rlimit rl;
        int resource = rlimit_of(name);
        rl.rlim_cur = (rlim_t)number(next());
        rl.rlim_max = (rlim_t)number(next());
        if (malformed || resource < 0) fail(err_w, "TypeError", "malformed request");
        if (setrlimit(resource, &rl) != 0) fail(err_w, "OSError", strerror(errno));
    }
    environ = envp; /* execvp searches the program's own PATH, as os.execvpe does */
    execvp(argv[0], argv);
    {
        char detail[3000];
        snprintf(detail, sizeof detail, "[Errno %d] %s: %.2000s", errno, strerror(errno), argv[0]);
        fail(err_w, errno == ENOENT ? "FileNotFoundError" : "OSError", detail);
    }
}

/* s as a JSON string: printable ASCII as is, control bytes \u00XX, and any other
 * byte '?' (the host parses this line as untrusted JSON: it must be ASCII). */
static size_t json_string(char *out, const char *s, size_t n) {
    size_t k = 0;
    out[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out[k++] = (char)c;
        else if (c < 0x80)
            k += (size_t)sprintf(out + k, "\\u%04x", c);
        else
            out[k++] = '?';
    }
    out[k++] = '"';
    return k;
}

static void on_deadline(int sig) {
    (void)sig;
    kill(-1, SIGKILL); /* every other process of the pid namespace */
    _exit(137);
}

/* Closes every descriptor but 0, 1, 2 and the n in keep. */
static void close_others(const int *keep, int n) {
    int close_fds[1024], count = 0;
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    if (!dir) return;
    while ((e = readdir(dir)) != NULL && count < 1024) {
        int fd = atoi(e->d_name), kept = 0;
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd(dir) || fd <= 2) continue;
        for (int i = 0; i < n; i++) kept |= keep[i] == fd;
        if (!kept) close_fds[count++] = fd;
    }
    closedir(dir);
    for (int i = 0; i < count; i++) close(close_fds[i]);
}

/* Everything readable from fd, to EOF, in a malloc'd buffer (NULL on failure). */
static unsigned char *read_all(int fd, size_t *got) {
    unsigned char *data = NULL;
    size_t size = 0;
    *got = 0;
    for (;;) {
        if (*got == size) {
            size = size ? size * 2 : 1 << 16;
            unsigned char *bigger = realloc(data, size);
            if (!bigger) {
                free(data);
                return NULL;
            }
            data = bigger;
        }
        ssize_t r = read(fd, data + *got, size - *got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            free(data);
            return NULL;
        }
        if (r == 0) return data;
        *got += (size_t)r;
    }
}

/* The seccomp filter of a fork-server's boxes (NULL: the bwrap-started mode,
 * where bubblewrap installed it already). */
static struct sock_fprog box_filter;

/* Serves one request (see the top of this file); returns PID 1's exit status. */
static int serve(int req, int res, int out, int err) {
    int fds[2];
    size_t got = 0, errn = 0;
    static char exec_error[4096];
    char line[4096 * 6 + 256];
    struct timespec t0, t1;
    unsigned char *request = read_all(req, &got); /* the box's memory limit bounds it */
    if (!request) return 125;
    if (got == 0) return 0;
    cur = request;
    end = request + got;
    long long deadline = number(next());
    if (malformed || deadline < 1 || deadline > 1 << 20) return 125;
    if (box_filter.filter &&
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &box_filter, 0, 0) != 0) {
        /* reported as a failed exec is */
        int n = snprintf(line, sizeof line,
                         "{\"exit_code\": 127, \"exec_error\": \"OSError: seccomp: %s\"}\n",
                         strerror(errno));
        put(res, line, (size_t)n);
        return 0;
    }
    if (pipe2(fds, O_CLOEXEC) != 0) return 125;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) return 125;
    if (pid == 0) child(out, err, fds[1]);
    signal(SIGALRM, on_deadline); /* PID 1 ignores a default-action signal */
    {
        sigset_t alrm; /* whatever mask the box was started with, let SIGALRM in */
        sigemptyset(&alrm);
        sigaddset(&alrm, SIGALRM);
        sigprocmask(SIG_UNBLOCK, &alrm, NULL);
    }
    alarm((unsigned)deadline);
    close(fds[1]);
    close(out);
    close(err);
    for (;;) {
        ssize_t r = read(fds[0], exec_error + errn, sizeof exec_error - errn);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        errn += (size_t)r;
        if (errn == sizeof exec_error) break;
    }
    int status = 0;
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    size_t k = (size_t)sprintf(line, "{\"wall\": %.9f, \"maxrss_kb\": %ld", wall, usage.ru_maxrss);
    if (errn > 0) {
        k += (size_t)sprintf(line + k, ", \"exec_error\": ");
        k += json_string(line + k, exec_error, errn);
    }
    if (WIFSIGNALED(status))
        k += (size_t)sprintf(line + k, ", \"signal\": %d}\n", WTERMSIG(status));
    else
        k += (size_t)sprintf(line + k, ", \"exit_code\": %d}\n", WEXITSTATUS(status));
    put(res, line, k);
    return 0;
}

/* -- fork-server mode ----------------------------------------------------- */

/* Tells the host why this box could not be made, and ends the box. */
static void refuse(int info, const char *what) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "error: %s: %s", what, strerror(errno));
    if (n > 0) send(info, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1, MSG_NOSIGNAL);
    _exit(125);
}

static void mount_tmpfs(int info, const char *target, long long bytes, const char *mode) {
    char data[96];
    snprintf(data, sizeof data, "size=%lld,mode=%s", bytes, mode);
    if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, data) != 0) refuse(info, target);
}

/* No capability left (bounding and ambient sets too), no way to gain one. */
static void drop_privileges(int info) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL) break; /* past the kernel's last capability */
            refuse(info, "drop capability");
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) refuse(info, "ambient");
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0) refuse(info, "capset");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) refuse(info, "no_new_privs");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) refuse(info, "dumpable");
}

/* The box's PID 1: its mounts, loopback and privileges, then one request. */
static void box_init(const int *fds, long long box_bytes, long long tmp_bytes) {
    int info = fds[0], req = fds[1], res = fds[2], out = fds[3], err = fds[4];
    signal(SIGCHLD, SIG_DFL); /* the fork-server's SIG_IGN would reap the program */
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        refuse(info, "mount /proc");
    mount_tmpfs(info, "/box", box_bytes, "0755");
    mount_tmpfs(info, "/tmp", tmp_bytes, "1777");
    mount_tmpfs(info, "/dev/shm", tmp_bytes, "1777");
    {
        struct ifreq ifr;
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        memset(&ifr, 0, sizeof ifr);
        strcpy(ifr.ifr_name, "lo");
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0) refuse(info, "loopback");
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) refuse(info, "loopback up");
        close(s);
    }
    if (chdir("/box") != 0) refuse(info, "chdir /box");
    drop_privileges(info);
    signal(SIGINT, SIG_IGN);
    for (int i = 1; i < 5; i++) fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    if (send(info, "ready", 5, MSG_NOSIGNAL) != 5) _exit(125);
    close(info);
    _exit(serve(req, res, out, err));
}

/* In the fork-server's child: new namespaces, then the box's PID 1. */
static void make_box(const int *fds, long long box_bytes, long long tmp_bytes) {
    close_others(fds, 5);
    if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID) != 0)
        refuse(fds[0], "unshare");
    if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) refuse(fds[0], "mount /");
    pid_t pid = fork();
    if (pid < 0) refuse(fds[0], "fork");
    if (pid == 0) box_init(fds, box_bytes, tmp_bytes);
    _exit(0); /* the box's PID 1 lives on; the fork-server reaps it */
}

static int zygote(int control, int seccomp, long long box_bytes, long long tmp_bytes) {
    size_t n = 0;
    unsigned char *program = read_all(seccomp, &n);
    close(seccomp);
    if (!program || n == 0 || n % 8 != 0 || n / 8 > 0xffff) return 125;
    box_filter.len = (unsigned short)(n / 8);
    box_filter.filter = (struct sock_filter *)program;
    signal(SIGCHLD, SIG_IGN); /* reaps every child: the forks, and boxes' PID 1s */
    if (send(control, "ready", 5, MSG_NOSIGNAL) != 5) return 125;
    for (;;) {
        char msg[64];
        union {
            char buf[CMSG_SPACE(8 * sizeof(int))];
            struct cmsghdr align;
        } cmsg;
        struct iovec iov = {msg, sizeof msg};
        struct msghdr hdr;
        int fds[8], nfds = 0;
        memset(&hdr, 0, sizeof hdr);
        hdr.msg_iov = &iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = cmsg.buf;
        hdr.msg_controllen = sizeof cmsg.buf;
        ssize_t got = recvmsg(control, &hdr, MSG_CMSG_CLOEXEC);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return 0; /* the host went away */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&hdr); c; c = CMSG_NXTHDR(&hdr, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < count && nfds < 8; i++)
                memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
        if (got == 3 && memcmp(msg, "box", 3) == 0 && nfds == 5 && !(hdr.msg_flags & MSG_CTRUNC)) {
            pid_t pid = fork();
            if (pid == 0) {
                close(control);
                make_box(fds, box_bytes, tmp_bytes);
            }
            if (pid < 0) { /* told to the host, which refuses the box */
                char why[128];
                int k = snprintf(why, sizeof why, "error: fork: %s", strerror(errno));
                send(fds[0], why, (size_t)k, MSG_NOSIGNAL);
            }
        }
        for (int i = 0; i < nfds; i++) close(fds[i]);
    }
}

int main(int argc, char **argv) {
    int req, res, out, err;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return 125;
    if (argc == 6 && strcmp(argv[1], "zygote") == 0) {
        int keep[2] = {atoi(argv[2]), atoi(argv[3])};
        close_others(keep, 2);
        return zygote(keep[0], keep[1], atoll(argv[4]), atoll(argv[5]));
    }
    if (argc != 5) return 125;
    req = atoi(argv[1]);
    res = atoi(argv[2]);
    out = atoi(argv[3]);
    err = atoi(argv[4]);
    signal(SIGINT, SIG_IGN);
    {
        /* Close every other inherited descriptor (this binary's own among them). */
        int keep[4] = {req, res, out, err};
        close_others(keep, 4);
    }
    fcntl(req, F_SETFD, FD_CLOEXEC);
    fcntl(res, F_SETFD, FD_CLOEXEC);
    fcntl(out, F_SETFD, FD_CLOEXEC);
    fcntl(err, F_SETFD, FD_CLOEXEC);
    put(res, "{\"ready\": 1}\n", 13);
    return serve(req, res, out, err);
}
