/*
 * test_df.c - unit tests of the df task's pure parts: finding the mount that
 * holds a path in /proc/self/mountinfo text (mountinfo.h) and formatting
 * sizes like df -h (humansize.h).
 */
#include "check.h"
#include "humansize.h"
#include "mountinfo.h"

#include <stdint.h>
#include <stdlib.h>

static const char table[] =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
    "30 27 8:1 / /home rw,relatime shared:1 master:2 - ext4 /dev/sda1 rw\n"
    "31 30 253:1 / /home/big\\040disk rw - xfs /dev/mapper/vg0-big rw\n"
    "32 27 0:40 / /var/lib/docker/overlay2/merged rw - overlay overlay rw,lowerdir=/a\n"
    "33 27 259:2 / /data rw - ext4 /dev/nvme0n1p2 rw\n"
    "34 27 0:41 / /data rw - tmpfs tmpfs rw\n"
    "35 27 0:42 / /mnt/we\\134ird\\011tab rw - nfs4 server:/export\\040x rw\n"
    "this line is garbage\n"
    "36 27 0:43 / /broken rw no-separator-here ext4 /dev/sdz1 rw\n"
    "37 27 9:0 /sub /homework rw - ext4 /dev/md0";

/* Looks path up in table; returns the volume name or "(none)". */
static const char *volume_of(const char *path, struct mountinfo_mount *m)
{
    mountinfo__clear(m);
    if (mountinfo__lookup(table, sizeof table - 1, path, m) != 0)
        return "(none)";
    return mountinfo__volume_name(m->source);
}

static void test_lookup(void)
{
    struct mountinfo_mount m = {0};

    CHECK_STR(volume_of("/", &m), "vda");
    CHECK_STR(m.mount_point, "/");
    CHECK_STR(m.fstype, "ext4");
    CHECK(m.major == 254 && m.minor == 0);
    CHECK_STR(volume_of("/etc/passwd", &m), "vda");
    CHECK_STR(volume_of("/home", &m), "sda1");
    CHECK_STR(volume_of("/home/alice/file", &m), "sda1");
    CHECK(m.major == 8 && m.minor == 1);
    /* A prefix must end at a path component: /homework is not under /home. */
    CHECK_STR(volume_of("/homework/x", &m), "md0");
    CHECK_STR(volume_of("/homes", &m), "vda");
    /* \040 is a space in the mount point; device-mapper names keep their last part. */
    CHECK_STR(volume_of("/home/big disk/f", &m), "vg0-big");
    CHECK_STR(m.mount_point, "/home/big disk");
    CHECK_STR(volume_of("/home/big", &m), "sda1");
    /* No device: the source as it is. */
    CHECK_STR(volume_of("/var/lib/docker/overlay2/merged/etc", &m), "overlay");
    CHECK_STR(m.fstype, "overlay");
    CHECK_STR(volume_of("/proc/self", &m), "proc");
    /* Two mounts on /data: the later one is on top. */
    CHECK_STR(volume_of("/data/x", &m), "tmpfs");
    /* \134 is a backslash and \011 a tab; the source is unescaped too. */
    CHECK_STR(volume_of("/mnt/we\\ird\ttab/f", &m), "server:/export x");
    CHECK_STR(m.mount_point, "/mnt/we\\ird\ttab");
    /* A line without the " - " separator is skipped. */
    CHECK_STR(volume_of("/broken", &m), "vda");
    /* Relative paths are refused: the caller resolves them first. */
    CHECK_STR(volume_of("home", &m), "(none)");
    CHECK(m.source == NULL);
    mountinfo__clear(&m);
}

static void test_lookup_edge(void)
{
    struct mountinfo_mount m = {0};
    const char only_home[] = "30 27 8:1 / /home rw - ext4 /dev/sda1 rw\n";
    const char no_super[] = "30 27 8:1 / / rw - ext4 /dev/sdb3";
    const char no_source[] = "30 27 8:1 / / rw - ext4";

    CHECK(mountinfo__lookup(only_home, sizeof only_home - 1, "/etc", &m) == -1);
    CHECK(mountinfo__lookup("", 0, "/", &m) == -1);
    CHECK(mountinfo__lookup(no_super, sizeof no_super - 1, "/x", &m) == 0);
    CHECK_STR(m.source, "/dev/sdb3");
    mountinfo__clear(&m);
    CHECK(mountinfo__lookup(no_source, sizeof no_source - 1, "/x", &m) == -1);
    /* The text need not be NUL-terminated: len bounds it. */
    CHECK(mountinfo__lookup(only_home, 20, "/home", &m) == -1);
    mountinfo__clear(&m);
}

static void test_unescape_and_names(void)
{
    char s1[] = "a\\040b\\011c\\012d\\134e";
    char s2[] = "trailing\\04";
    char s3[] = "\\999 and \\x";

    mountinfo__unescape(s1);
    CHECK_STR(s1, "a b\tc\nd\\e");
    mountinfo__unescape(s2);
    CHECK_STR(s2, "trailing\\04");
    mountinfo__unescape(s3);
    CHECK_STR(s3, "\\999 and \\x");

    CHECK_STR(mountinfo__volume_name("/dev/sda1"), "sda1");
    CHECK_STR(mountinfo__volume_name("/dev/vda"), "vda");
    CHECK_STR(mountinfo__volume_name("/dev/nvme0n1p2"), "nvme0n1p2");
    CHECK_STR(mountinfo__volume_name("/dev/mapper/vg0-root"), "vg0-root");
    CHECK_STR(mountinfo__volume_name("/dev/"), "/dev/");
    CHECK_STR(mountinfo__volume_name("overlay"), "overlay");
    CHECK_STR(mountinfo__volume_name("server:/export"), "server:/export");
    CHECK_STR(mountinfo__volume_name("/devices/x"), "/devices/x");
}

static const char *size(uint64_t bytes)
{
    static char buf[16];

    return humansize__format(bytes, buf, sizeof buf);
}

static void test_human_size(void)
{
    const uint64_t K = 1024, M = K * K, G = M * K, T = G * K;
    char small[4];

    CHECK_STR(size(0), "0");
    CHECK_STR(size(1), "1");
    CHECK_STR(size(1000), "1000");
    CHECK_STR(size(1023), "1023");
    CHECK_STR(size(K), "1.0K");
    CHECK_STR(size(K + 1), "1.1K"); /* rounded up, as df does */
    CHECK_STR(size(K + K / 10), "1.1K");
    CHECK_STR(size(3 * G + 4 * G / 10), "3.4G");
    CHECK_STR(size(3 * G + 4 * G / 10 + 1), "3.5G");
    CHECK_STR(size(9 * K + 9 * K / 10 + 1), "10K"); /* 9.90..1K rounds up past 9.9 */
    CHECK_STR(size(10 * K - 1), "10K");
    CHECK_STR(size(10 * K), "10K");
    CHECK_STR(size(10 * K + 1), "11K");
    CHECK_STR(size(512 * M), "512M");
    CHECK_STR(size(12 * G), "12G");
    CHECK_STR(size(12 * G - 1), "12G");
    CHECK_STR(size(M - 1), "1.0M"); /* 1023.999K rounds up into the next unit */
    CHECK_STR(size(1023 * K), "1023K");
    CHECK_STR(size(1023 * K + 1), "1.0M");
    CHECK_STR(size(80 * G + 123456789), "81G");
    CHECK_STR(size(2 * T), "2.0T");
    CHECK_STR(size(UINT64_MAX), "16E");
    CHECK_STR(size(UINT64_C(1) << 60), "1.0E");
    /* A short buffer is truncated, never overrun. */
    humansize__format(123 * G, small, sizeof small);
    CHECK_STR(small, "123");
}

int main(void)
{
    test_lookup();
    test_lookup_edge();
    test_unescape_and_names();
    test_human_size();
    return check_summary();
}
