#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>
#include "kiln_sandbox.h"

/* Reports a failed step through the pipe and exits; only system calls from here on. */
static void fail(int fd, int step) {
    int msg[2] = { step, errno };
    ssize_t r = write(fd, msg, sizeof msg);
    (void)r;
    _exit(127);
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

/* Joins a directory and a name into buf without malloc. */
static const char *join(char *buf, size_t size, const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    if (a + b + 2 > size) return NULL;
    memcpy(buf, dir, a);
    buf[a] = '/';
    memcpy(buf + a + 1, name, b + 1);
    return buf;
}

/* A minimal /dev: tmpfs with the host's harmless character devices bind-mounted. */
static int make_dev(const char *dev, int userns) {
    static const char *const nodes[] = { "null", "zero", "full", "random", "urandom", "tty", NULL };
    char path[4096], host[64];
    if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536k") != 0) return -1;
    for (int i = 0; nodes[i]; i++) {
        if (!join(path, sizeof path, dev, nodes[i])) { errno = ENAMETOOLONG; return -1; }
        if (!join(host, sizeof host, "/dev", nodes[i])) { errno = ENAMETOOLONG; return -1; }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) return -1;
        close(fd);
        if (mount(host, path, NULL, MS_BIND, NULL) != 0) return -1;
    }
    static const char *const links[][2] = {
        { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
        { "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" }, { NULL, NULL } };
    for (int i = 0; links[i][0]; i++) {
        if (!join(path, sizeof path, dev, links[i][0])) { errno = ENAMETOOLONG; return -1; }
        if (symlink(links[i][1], path) != 0) return -1;
    }
    /* POSIX shared memory (sem_open, shm_open, Python's multiprocessing). */
    if (!join(path, sizeof path, dev, "shm")) { errno = ENAMETOOLONG; return -1; }
    if (mkdir(path, 01777) != 0) return -1;
    if (mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k") != 0) return -1;
    /* A private devpts instance (Documentation/filesystems/devpts.rst), so apt and
       script(1) get terminals; /dev/ptmx points at its own ptmx, as runc sets it up.
       gid=5 (tty) only where that group is mapped. */
    if (!join(path, sizeof path, dev, "pts")) { errno = ENAMETOOLONG; return -1; }
    if (mkdir(path, 0755) != 0) return -1;
    if (mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC,
              userns ? "newinstance,ptmxmode=0666,mode=0620" : "newinstance,ptmxmode=0666,mode=0620,gid=5") != 0)
        return -1;
    if (!join(path, sizeof path, dev, "ptmx")) { errno = ENAMETOOLONG; return -1; }
    if (symlink("pts/ptmx", path) != 0) return -1;
    return 0;
}

/* Bind-mounts `src` read-only on `dst`. The remount keeps the flags the kernel locks
   on the source mount in a user namespace (mount_namespaces(7)). */
static int bind_ro(const char *src, const char *dst) {
    struct statvfs sv;
    if (statvfs(src, &sv) != 0) return -1;
    if (mount(src, dst, NULL, MS_BIND, NULL) != 0) return -1;
    unsigned long flags = MS_BIND | MS_REMOUNT | MS_RDONLY;
    if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    return mount(NULL, dst, NULL, flags, NULL);
}

/* Runs in the new PID namespace as PID 1's parent-to-be: mounts, enters the root, execs. */
static void inner(const struct kiln_sandbox *sb, int errfd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (sb->proc_dir && mount("proc", sb->proc_dir, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        fail(errfd, KILN_SB_PROC);
    if (sb->dev_dir && make_dev(sb->dev_dir, sb->userns) != 0) fail(errfd, KILN_SB_DEV);
    for (const char *const *b = sb->ro_binds; b && b[0] && b[1]; b += 2)
        if (bind_ro(b[0], b[1]) != 0) fail(errfd, KILN_SB_BIND);
    if (sb->tmp_dir && mount("tmpfs", sb->tmp_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0)
        fail(errfd, KILN_SB_TMP);
    if (chdir(sb->merged) != 0) fail(errfd, KILN_SB_ROOT);
    /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
       only the image. chroot is the fallback where pivot_root is refused. */
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (umount2(".", MNT_DETACH) != 0) fail(errfd, KILN_SB_ROOT);
    } else if (chroot(".") != 0) {
        fail(errfd, KILN_SB_ROOT);
    }
    if (chdir("/") != 0) fail(errfd, KILN_SB_ROOT);
    sethostname("kiln", 4);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) { dup2(null, 0); close(null); } else { close(0); }
    if (dup2(sb->log_fd, 1) < 0 || dup2(sb->log_fd, 2) < 0) fail(errfd, KILN_SB_EXEC);
    umask(022);
    char *const argv[] = { "sh", "-e", "-c", (char *)sb->script, NULL };
    execve("/bin/sh", argv, (char *const *)sb->envp);
    fail(errfd, KILN_SB_EXEC);
}

/* Runs a map helper (newuidmap/newgidmap) for `pid` in the parent; 0 when it exited 0. */
static int run_map_helper(const char *const *argv, pid_t pid) {
    char pidtext[24];
    snprintf(pidtext, sizeof pidtext, "%d", (int)pid);
    int n = 0;
    while (argv[n]) n++;
    const char *args[n + 1];
    for (int i = 0; i < n; i++) args[i] = i == 1 ? pidtext : argv[i];
    args[n] = NULL;
    pid_t h = fork();
    if (h < 0) return -1;
    if (h == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) { dup2(null, 0); dup2(null, 1); }
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    int ws;
    while (waitpid(h, &ws, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(ws) && WEXITSTATUS(ws) == 0 ? 0 : -1;
}

int kiln_sandbox_run(const struct kiln_sandbox *sb, int *status, int *step, int *err) {
    int p[2], ready[2] = { -1, -1 }, go[2] = { -1, -1 };
    int helpers = sb->userns && sb->uidmap_argv && sb->gidmap_argv;
    *step = KILN_SB_OK;
    *err = 0;
    if (pipe2(p, O_CLOEXEC) != 0) { *step = KILN_SB_FORK; *err = errno; return -1; }
    if (helpers && (pipe2(ready, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0)) {
        *step = KILN_SB_FORK; *err = errno;
        close(p[0]); close(p[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *step = KILN_SB_FORK; *err = errno;
        close(p[0]); close(p[1]);
        if (helpers) { close(ready[0]); close(ready[1]); close(go[0]); close(go[1]); }
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        int errfd = p[1];
        /* The sandbox dies with Kiln. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (sb->userns) {
            if (unshare(CLONE_NEWUSER) != 0) fail(errfd, KILN_SB_USERNS);
            if (helpers) {
                /* Kiln maps the subordinate range from outside, then says go. */
                close(ready[0]); close(go[1]);
                char c = 'r';
                if (write(ready[1], &c, 1) != 1) fail(errfd, KILN_SB_IDMAP);
                close(ready[1]);
                ssize_t n;
                do { n = read(go[0], &c, 1); } while (n < 0 && errno == EINTR);
                if (n != 1 || c != 'g') { errno = EPERM; fail(errfd, KILN_SB_IDMAP); }
                close(go[0]);
                if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) fail(errfd, KILN_SB_IDMAP);
                /* The caller's supplementary groups are unmapped here (nogroup): drop them. */
                setgroups(0, NULL);
            } else {
                if (write_file("/proc/self/setgroups", "deny") != 0 && errno != ENOENT) fail(errfd, KILN_SB_IDMAP);
                if (write_file("/proc/self/uid_map", sb->uid_map) != 0) fail(errfd, KILN_SB_IDMAP);
                if (write_file("/proc/self/gid_map", sb->gid_map) != 0) fail(errfd, KILN_SB_IDMAP);
            }
        }
        int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
        if (!sb->network) flags |= CLONE_NEWNET;
        if (unshare(flags) != 0) fail(errfd, KILN_SB_NAMESPACES);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail(errfd, KILN_SB_PRIVATE);
        if (sb->mount_cwd && chdir(sb->mount_cwd) != 0) fail(errfd, KILN_SB_OVERLAY);
        if (mount("overlay", sb->merged, "overlay", 0, sb->overlay_options) != 0) fail(errfd, KILN_SB_OVERLAY);
        pid_t child = fork();
        if (child < 0) fail(errfd, KILN_SB_FORK);
        if (child == 0) inner(sb, errfd);
        close(errfd);
        int ws;
        while (waitpid(child, &ws, 0) < 0) {
            if (errno != EINTR) _exit(127);
        }
        if (WIFSIGNALED(ws)) {
            /* Pass the signal on so Kiln sees how the script ended. */
            signal(WTERMSIG(ws), SIG_DFL);
            kill(getpid(), WTERMSIG(ws));
            _exit(128 + WTERMSIG(ws));
        }
        _exit(WEXITSTATUS(ws));
    }
    close(p[1]);
    if (helpers) {
        close(ready[1]); close(go[0]);
        char c;
        ssize_t n;
        do { n = read(ready[0], &c, 1); } while (n < 0 && errno == EINTR);
        close(ready[0]);
        /* n != 1: the child failed before; the error pipe says why. */
        if (n == 1) {
            c = run_map_helper(sb->uidmap_argv, pid) == 0 && run_map_helper(sb->gidmap_argv, pid) == 0 ? 'g' : 'n';
            ssize_t w = write(go[1], &c, 1);
            (void)w;
        }
        close(go[1]);
    }
    int msg[2] = { 0, 0 };
    ssize_t got = 0;
    while (got < (ssize_t)sizeof msg) {
        ssize_t n = read(p[0], (char *)msg + got, sizeof msg - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += n;
    }
    close(p[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno != EINTR) { *step = KILN_SB_FORK; *err = errno; return -1; }
    }
    if (got == (ssize_t)sizeof msg) {
        *step = msg[0];
        *err = msg[1];
        return -1;
    }
    *status = ws;
    return 0;
}

int kiln_syncfs(int fd) { return syncfs(fd); }
