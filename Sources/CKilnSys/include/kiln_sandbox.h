#ifndef KILN_SANDBOX_H
#define KILN_SANDBOX_H

/* Runs a shell script as root in new mount, PID, IPC, UTS (and, unless `network`,
   network) namespaces, plus a user namespace when `userns` is set, chrooted (pivot_root)
   into an overlayfs mounted at `merged`. The overlay's mounts and every process in the
   sandbox disappear when the script ends.

   All strings are prepared by the caller: after fork the child only makes system calls. */
struct kiln_sandbox {
    const char *merged;          /* mount point of the overlay (an empty directory) */
    const char *mount_cwd;       /* directory relative lowerdirs are resolved from, or NULL */
    const char *overlay_options; /* "lowerdir=…,upperdir=…,workdir=…,…" */
    const char *script;          /* run as /bin/sh -e -c SCRIPT */
    const char *const *envp;     /* the script's environment */
    const char *uid_map;         /* "0 UID 1\n" when userns */
    const char *gid_map;         /* "0 GID 1\n" when userns */
    /* Rootless with a subordinate range (subuid(5)): instead of writing the maps above,
       Kiln runs these setuid helpers (newuidmap(1), newgidmap(1)) on the sandbox once
       it has its user namespace; argv[1] is replaced by its PID. NULL: not used. */
    const char *const *uidmap_argv;
    const char *const *gidmap_argv;
    /* mount points below `merged`, already existing in a lower directory */
    const char *proc_dir, *dev_dir, *tmp_dir;
    /* host files bind-mounted read-only into the sandbox: source, target, source,
       target…, NULL (targets exist below `merged`) */
    const char *const *ro_binds;
    int network;                 /* 1: keep the host network */
    int userns;                  /* 1: create a user namespace first */
    int log_fd;                  /* the script's stdout and stderr */
};

/* Where a setup failure happened (reported with errno). */
enum kiln_sandbox_step {
    KILN_SB_OK = 0,
    KILN_SB_FORK,
    KILN_SB_USERNS,
    KILN_SB_IDMAP,
    KILN_SB_NAMESPACES,
    KILN_SB_PRIVATE,
    KILN_SB_OVERLAY,
    KILN_SB_PROC,
    KILN_SB_DEV,
    KILN_SB_TMP,
    KILN_SB_ROOT,
    KILN_SB_EXEC,
    KILN_SB_BIND,
};

/* Returns 0 and the wait status of the script in *status, or -1 with the failing
   step and errno in *step and *err (the script never ran). */
int kiln_sandbox_run(const struct kiln_sandbox *sb, int *status, int *step, int *err);

/* syncfs(2): flushes the file system holding `fd` (a snapshot before it is renamed
   into place). Not in Swift's Glibc module, which lacks _GNU_SOURCE. */
int kiln_syncfs(int fd);

#endif
