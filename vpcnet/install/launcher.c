/*
 * vpcnet-cni launcher: the file kubelet execs as /opt/cni/bin/vpcnet-cni.
 *
 * A static executable, so it runs on hosts without Python, a shell or a compatible
 * libc (Bottlerocket, minimal AMIs). It only execve()s an argv prefix that the
 * installer (vpcnet/install/launcher.py) writes into `vpcnet_argv` below, followed by
 * its own arguments, with the environment untouched (the CNI_* variables pass through).
 * The prefix starts the bundled dynamic loader on the bundled interpreter, e.g.
 *
 *   <rt>/lib/ld-linux-x86-64.so.2 --inhibit-cache --library-path <rt>/lib
 *       <rt>/bin/python3.11 -I -S -c "<run vpcnet.cni.plugin>"
 *
 * Invoking the loader explicitly is what makes the runtime relocatable and immune to
 * the host's /etc/ld.so.cache and libc version: no ELF patching, no LD_LIBRARY_PATH.
 *
 * Blob format: NUL-terminated strings, ended by an empty string; the first is an
 * absolute path. The unpatched blob holds only VPCNET_MARKER (the installer finds it
 * there; it must appear nowhere else in the file), so a launcher that was never
 * configured fails loudly instead of exec'ing the marker.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define VPCNET_MARKER "@@VPCNET-CNI-LAUNCHER-ARGV@@"
#define BLOB_SIZE 8192
#define MAX_PREFIX 64

/* Not static and not const: the compiler must keep all BLOB_SIZE bytes and may not
 * fold the initializer into the code, since the installer rewrites them in the file. */
__attribute__((used)) char vpcnet_argv[BLOB_SIZE] = VPCNET_MARKER;

/* A CNI error object on stdout (the runtime reads it) and a non-zero exit; code 100 is
 * vpcnet.cni.protocol.ERR_INTERNAL. */
static int fail(const char *msg, const char *details)
{
    printf("{\"cniVersion\":\"1.0.0\",\"code\":100,\"msg\":\"%s\",\"details\":\"%s\"}\n",
           msg, details);
    fflush(stdout);
    return 1;
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

    execve(args[0], args, envp);
    /* Only reached when the runtime is missing or broken (e.g. a half-removed install). */
    return fail("vpcnet-cni cannot start its runtime", strerror(errno));
}
