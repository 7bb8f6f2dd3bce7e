/*
 * task_credentials.c - how a task gets its broker credentials, and keeps
 * them from the commands it runs (docs/protocol.md "Credentials").
 *
 * The coordinator never puts a password in a task's environment: a process
 * running as the same user can read another's environment in
 * /proc/<pid>/environ for its whole life, unsetenv or not. It hands the
 * credentials over on an inherited pipe instead, whose number is in
 * FLOWBUS_CREDENTIALS_FD; the task reads it to the end and closes it, so
 * the pipe is empty and gone before the task starts anything. The text is
 * in the format of mosquitto_pub's options file ("-u USER" and "-P
 * PASSWORD" lines), so a shell plugin can hand it to mosquitto_pub without
 * a password on any command line.
 *
 * Before anything is read the process makes itself non-dumpable
 * (PR_SET_DUMPABLE 0): then /proc/<pid>/environ, mem and fd/ of the task
 * are closed to the commands it runs, which run as the same user (only a
 * process with CAP_SYS_PTRACE still gets in).
 *
 * FLOWBUS_PASSWORD in the environment is still read when no descriptor is
 * given, for a plugin started by hand against a broker; it is removed from
 * the environment at once so that no child inherits it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "task_internal.h"

/* More than any user name and password; a larger text is not ours. */
#define CREDENTIALS_MAX 4096

/* The value of the options-file line "OPT value" (opt is "-u" or "-P"), or NULL. */
static const char *option_value(const char *line, const char *opt)
{
    size_t n = strlen(opt);

    return strncmp(line, opt, n) == 0 && line[n] == ' ' ? line + n + 1 : NULL;
}

/* Reads the whole pipe (it was filled and closed before we started). */
static enum fb_err read_all(int fd, char *buf, size_t cap, size_t *len, char *errbuf,
                            size_t errlen)
{
    *len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err__set(errbuf, errlen, "FLOWBUS_CREDENTIALS_FD %d: %s", fd, strerror(errno));
            return FB_ERR_ENV;
        }
        if (n == 0)
            break;
        *len += (size_t)n;
        if (*len == cap - 1) {
            err__set(errbuf, errlen, "FLOWBUS_CREDENTIALS_FD %d holds more than %d bytes", fd,
                     CREDENTIALS_MAX - 1);
            return FB_ERR_ENV;
        }
    }
    buf[*len] = '\0';
    return FB_OK;
}

/* Takes "-u" and "-P" from the text; other lines are for later versions and ignored. */
static enum fb_err parse(struct task_env *env, char *text, char *errbuf, size_t errlen)
{
    char *save = NULL;
    char *line;
    const char *v;

    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char **field = (v = option_value(line, "-u")) != NULL   ? &env->username
                       : (v = option_value(line, "-P")) != NULL ? &env->password
                                                                : NULL;
        if (field == NULL)
            continue;
        if (*field != NULL) {
            explicit_bzero(*field, strlen(*field));
            free(*field);
        }
        *field = str__dup(v);
        if (*field == NULL) {
            err__set(errbuf, errlen, "out of memory");
            return FB_ERR_NOMEM;
        }
    }
    return FB_OK;
}

void task_credentials__protect(void)
{
    /* Best effort: without it (an old kernel) the rest still holds for the environment. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

enum fb_err task_credentials__read(struct task_env *env, char *errbuf, size_t errlen)
{
    const char *text = getenv("FLOWBUS_CREDENTIALS_FD");
    char buf[CREDENTIALS_MAX];
    char *end = NULL;
    size_t len = 0;
    long fd;
    enum fb_err err;

    /* A password from the environment (a plugin started by hand) is not passed on. */
    if (getenv("FLOWBUS_PASSWORD") != NULL)
        unsetenv("FLOWBUS_PASSWORD");
    if (text == NULL || *text == '\0')
        return FB_OK;
    errno = 0;
    fd = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || fd < 3 || fd > 1024) {
        err__set(errbuf, errlen,
                 "FLOWBUS_CREDENTIALS_FD '%s' is not the number of an inherited descriptor (3 "
                 "to 1024)",
                 text);
        unsetenv("FLOWBUS_CREDENTIALS_FD");
        return FB_ERR_ENV;
    }
    err = read_all((int)fd, buf, sizeof buf, &len, errbuf, errlen);
    close((int)fd);
    unsetenv("FLOWBUS_CREDENTIALS_FD");
    if (err == FB_OK)
        err = parse(env, buf, errbuf, errlen);
    explicit_bzero(buf, sizeof buf);
    return err;
}

void fb_task_bus_options(const fb_task *task, fb_bus_options *opts)
{
    if (task == NULL || opts == NULL)
        return;
    opts->url = task->env.broker;
    opts->username = task->env.username;
    opts->password = task->env.password;
    opts->ca_file = task->env.tls_ca;
    opts->cert_file = task->env.tls_cert;
    opts->key_file = task->env.tls_key;
}
