/*
 * vpcnet-cni launcher: the file kubelet execs as /opt/cni/bin/vpcnet-cni.
 *
 * A static executable, so it runs on hosts without Python, a shell or a compatible
 * libc (Bottlerocket, minimal AMIs). It execve()s an argv prefix that the installer
 * (vpcnet/install/launcher.py) writes into `vpcnet_argv` below, followed by its own
 * arguments, with the environment untouched (the CNI_* variables pass through).
 * The prefix starts the bundled dynamic loader on the bundled interpreter, e.g.
 *
 *   <rt>/lib/ld-linux-x86-64.so.2 --inhibit-cache --library-path <rt>/lib
 *       <rt>/bin/python3.11 -I -S -c "<run vpcnet.cni.plugin>"
 *
 * Invoking the loader explicitly is what makes the runtime relocatable and immune to
 * the host's /etc/ld.so.cache and libc version: no ELF patching, no LD_LIBRARY_PATH.
 *
 * Fast path: the blob may also name the agent's socket. Then the launcher first hands
 * the raw invocation (stdin and the six CNI_* variables, uninterpreted) to the agent,
 * which runs the very same Python plugin code in-process
 * (vpcnet/agent/cniserver/inprocess.py) and sends back its stdout and exit status. The
 * launcher decides nothing about CNI: on any failure to get such an answer, or when the
 * agent answers "fallback", it puts stdin back and execs the plugin as above, so an old,
 * dead or foreign agent gets exactly the plugin's behaviour (e.g. a DEL is spooled).
 *
 * Blob format: NUL-terminated strings, ended by an empty string; the first is an
 * absolute path. After the empty string, optionally, the agent socket's path
 * (NUL-terminated; an empty string or nothing means no fast path). The unpatched blob
 * holds only VPCNET_MARKER (the installer finds it there; it must appear nowhere else
 * in the file), so a launcher that was never configured fails loudly instead of
 * exec'ing the marker.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define VPCNET_MARKER "@@VPCNET-CNI-LAUNCHER-ARGV@@"
#define BLOB_SIZE 8192
#define MAX_PREFIX 64

/* The fast path's frame; these must match vpcnet/agent/cniserver/inprocess.py (and
 * MAX_REQUEST_BYTES vpcnet/cni/protocol.py), which tests/unit/test_launcher_fastpath.py
 * checks. The magics start with a NUL, so a frame is never mistaken for a JSON request.
 * Request: REQ_MAGIC, then "NAME=value\0" for each CNI_* variable that is set (absent
 * ones are left out, so absent and empty differ), an empty string, then stdin as read.
 * Replies: DONE_MAGIC, one byte of exit status, the plugin's stdout; or FALLBACK_MAGIC. */
#define REQ_MAGIC "\0vpcnet-cni/1 req\0"
#define DONE_MAGIC "\0vpcnet-cni/1 done\0"
#define FALLBACK_MAGIC "\0vpcnet-cni/1 fallback\0"
#define MAX_REQUEST_BYTES (1 << 20)
#define ENV_ALLOWANCE 65536
#define MAX_STDOUT_BYTES (1 << 21)
#define LEN(lit) (sizeof(lit) - 1)
/* Sending (connect on a full backlog, the frame) is bounded like the agent's own read of
 * a request (READ_TIMEOUT_SECONDS in transport.py): an agent that does not take the
 * frame in that time is not going to serve it. */
#ifndef SEND_TIMEOUT_SECONDS /* -D for tests only */
#define SEND_TIMEOUT_SECONDS 10
#endif
/* The reply may take as long as the plugin's timeoutSeconds (validated in (0, 3600] by
 * plugin.py) plus the reply's own time: the agent enforces the request's real budget
 * (its in-process plugin gives up with code 11, or spools a DEL, when the timeout
 * passes), so this bound only fires on an agent that accepted and then hung. It must
 * not be shorter than any budget a config may set, or a long but legitimate ADD would
 * be cut off and redone; 60 s above the largest one covers the reply. */
#ifndef REPLY_TIMEOUT_SECONDS /* -D for tests only */
#define REPLY_TIMEOUT_SECONDS (3600 + 60)
#endif

/* Not static and not const: the compiler must keep all BLOB_SIZE bytes and may not
 * fold the initializer into the code, since the installer rewrites them in the file. */
__attribute__((used)) char vpcnet_argv[BLOB_SIZE] = VPCNET_MARKER;

static const char *const cni_vars[] = {
    "CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH",
};
#define N_VARS (sizeof(cni_vars) / sizeof(cni_vars[0]))

static char stdin_buf[MAX_REQUEST_BYTES + 1]; /* as much as the plugin itself reads */
static size_t stdin_len;
static char reply_buf[LEN(DONE_MAGIC) + 1 + MAX_STDOUT_BYTES + 1]; /* +1: too long */

/* A CNI error object on stdout (the runtime reads it) and a non-zero exit; code 100 is
 * vpcnet.cni.protocol.ERR_INTERNAL. */
static int fail(const char *msg, const char *details)
{
    printf("{\"cniVersion\":\"1.0.0\",\"code\":100,\"msg\":\"%s\",\"details\":\"%s\"}\n",
           msg, details);
    fflush(stdout);
    return 1;
}

/* send() on the socket (is_sock): MSG_NOSIGNAL, so an agent that went away is an
 * error (EPIPE) to fall back on, not a SIGPIPE that kills the launcher. */
static int write_all(int fd, const char *buf, size_t len, int is_sock)
{
    while (len > 0) {
        ssize_t n = is_sock ? send(fd, buf, len, MSG_NOSIGNAL) : write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read stdin as the plugin would (up to MAX_REQUEST_BYTES + 1 bytes or EOF). -1 when
 * nothing could be read at all (e.g. no fd 0): then stdin is left for the plugin. */
static int read_stdin(void)
{
    while (stdin_len < sizeof(stdin_buf)) {
        ssize_t n = read(0, stdin_buf + stdin_len, sizeof(stdin_buf) - stdin_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return stdin_len > 0 ? 1 : -1; /* 1: put back what was read, no fast path */
        if (n == 0)
            break;
        stdin_len += (size_t)n;
    }
    return 0;
}

/* Put the stdin that was read back on fd 0 for the plugin: a memfd, else a pipe fed
 * by a child (a pipe's buffer may be smaller than what was read). */
static int restore_stdin(void)
{
    int fd = memfd_create("vpcnet-cni-stdin", 0);
    if (fd >= 0) {
        if (write_all(fd, stdin_buf, stdin_len, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0 &&
            dup2(fd, 0) == 0) {
            if (fd != 0)
                close(fd);
            return 0;
        }
        if (fd != 0)
            close(fd);
    }
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(p[0]);
        _exit(write_all(p[1], stdin_buf, stdin_len, 0) == 0 ? 0 : 1);
    }
    close(p[1]);
    if (dup2(p[0], 0) != 0)
        return -1;
    if (p[0] != 0)
        close(p[0]);
    return 0;
}

/* Forward the invocation to the agent at `sock`. Returns only to fall back (nothing was
 * written to stdout); on an answer it writes the plugin's stdout and exits with its
 * status. Falling back after the agent may have acted is safe: ADD and DEL are
 * idempotent and serialised per attachment in the agent, so the plugin redoing the
 * request converges on the same state (an ADD gets the same IP back). */
static void forward(const char *sock, char **envp)
{
    const char *vals[N_VARS] = {0};
    size_t env_bytes = 1;
    for (size_t i = 0; i < N_VARS; i++) {
        size_t klen = strlen(cni_vars[i]);
        for (char **e = envp; *e != NULL; e++) {
            if (strncmp(*e, cni_vars[i], klen) == 0 && (*e)[klen] == '=') {
                vals[i] = *e; /* the first one, as getenv() and the plugin take */
                env_bytes += strlen(*e) + 1;
                break;
            }
        }
    }
    if (env_bytes > ENV_ALLOWANCE)
        return; /* more than any valid request holds: the plugin words the error */

    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, sock, sizeof(addr.sun_path) - 1); /* length checked by main */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct timeval snd = {.tv_sec = SEND_TIMEOUT_SECONDS}, rcv = {.tv_sec = REPLY_TIMEOUT_SECONDS};
    size_t got = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof(rcv)) != 0 ||
        connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        write_all(fd, REQ_MAGIC, LEN(REQ_MAGIC), 1) != 0)
        goto out;
    for (size_t i = 0; i < N_VARS; i++)
        if (vals[i] != NULL && write_all(fd, vals[i], strlen(vals[i]) + 1, 1) != 0)
            goto out;
    if (write_all(fd, "", 1, 1) != 0 || write_all(fd, stdin_buf, stdin_len, 1) != 0 ||
        shutdown(fd, SHUT_WR) != 0)
        goto out;
    while (got < sizeof(reply_buf)) { /* to EOF; a timeout or error is a fallback */
        ssize_t n = read(fd, reply_buf + got, sizeof(reply_buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got <= LEN(DONE_MAGIC) || got == sizeof(reply_buf) ||
        memcmp(reply_buf, DONE_MAGIC, LEN(DONE_MAGIC)) != 0)
        goto out; /* "fallback", or anything else: the plugin decides */
    close(fd);
    int rc = (unsigned char)reply_buf[LEN(DONE_MAGIC)];
    size_t skip = LEN(DONE_MAGIC) + 1;
    if (write_all(1, reply_buf + skip, got - skip, 0) != 0)
        rc = 1; /* as the plugin does when its stdout fails */
    _exit(rc);
out:
    close(fd);
}

int main(int argc, char **argv, char **envp)
{
    char *args[MAX_PREFIX + argc + 1];
    int n = 0;
    size_t off = 0;

    if (vpcnet_argv[0] != '/')
        return fail("vpcnet-cni launcher is not configured", "run vpcnet install-cni");
    while (off < BLOB_SIZE && vpcnet_argv[off] != '\0') {
        size_t len = strnlen(vpcnet_argv + off, BLOB_SIZE - off);
        if (off + len >= BLOB_SIZE || n == MAX_PREFIX)
            return fail("vpcnet-cni launcher is corrupt", "reinstall with vpcnet install-cni");
        args[n++] = vpcnet_argv + off;
        off += len + 1;
    }
    if (n == 0)
        return fail("vpcnet-cni launcher is corrupt", "empty argv");
    for (int i = 1; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;

    off++; /* past the empty string that ends the argv: the agent socket, if any */
    if (off < BLOB_SIZE && vpcnet_argv[off] != '\0') {
        const char *sock = vpcnet_argv + off;
        size_t len = strnlen(sock, BLOB_SIZE - off);
        if (off + len >= BLOB_SIZE || len >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return fail("vpcnet-cni launcher is corrupt", "bad agent socket path");
        int got = read_stdin();
        if (got == 0)
            forward(sock, envp);
        if (got >= 0 && restore_stdin() != 0)
            return fail("vpcnet-cni cannot pass its stdin on", strerror(errno));
    }

    execve(args[0], args, envp);
    /* Only reached when the runtime is missing or broken (e.g. a half-removed install). */
    return fail("vpcnet-cni cannot start its runtime", strerror(errno));
}
