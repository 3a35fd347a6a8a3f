/* The one small command every build tool runs per target in benches/peers.py, so that the
 * tools are compared on the same work: read every input, write every output (its parent
 * directory made if need be) holding a 64-bit FNV-1a digest of the inputs' bytes and of the
 * extra words given. An output therefore changes exactly when an input's content (or an extra
 * word, such as a parameter) changes, as a real stage's would.
 *
 *   stampw OUT... [-- IN...] [+ WORD...]
 * An argument @LIST stands for the lines of the file LIST (a response file; ninja's are
 * space-separated, which is split too).
 *
 * Built by peers.py with `cc -O2 -o stampw stampw.c`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void mkparents(char *path) {
    for (char *s = path + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                perror(path);
                exit(1);
            }
            *s = '/';
        }
    }
}

/* Arguments from a response file, one per line. */
static char **read_list(const char *file, int *argc) {
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        exit(1);
    }
    size_t cap = 64, n = 0;
    char **v = malloc(cap * sizeof *v);
    char *line = NULL;
    size_t len = 0;
    ssize_t got;
    while ((got = getline(&line, &len, f)) > 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == ' ')) line[--got] = 0;
        /* ninja writes $out separated by spaces: split them too. */
        for (char *tok = strtok(line, " "); tok; tok = strtok(NULL, " ")) {
            if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
            v[n++] = strdup(tok);
        }
    }
    fclose(f);
    free(line);
    *argc = (int)n;
    return v;
}

int main(int argc, char **argv) {
    /* Expand every @LIST argument in place. */
    int n = 0, cap = argc + 16;
    char **args = malloc((size_t)cap * sizeof *args);
    for (int a = 1; a < argc; a++) {
        int m = 1;
        char **more = &argv[a];
        if (argv[a][0] == '@') more = read_list(argv[a] + 1, &m);
        if (n + m > cap) args = realloc(args, (size_t)(cap = 2 * (n + m)) * sizeof *args);
        memcpy(args + n, more, (size_t)m * sizeof *args);
        n += m;
    }
    int outs = 0;
    while (outs < n && strcmp(args[outs], "--") && strcmp(args[outs], "+")) outs++;
    uint64_t h = 1469598103934665603ULL;
    unsigned char buf[1 << 16];
    int i = outs;
    if (i < n && !strcmp(args[i], "--")) {
        for (i++; i < n && strcmp(args[i], "+"); i++) {
            int fd = open(args[i], O_RDONLY);
            if (fd < 0) {
                perror(args[i]);
                return 1;
            }
            ssize_t r;
            while ((r = read(fd, buf, sizeof buf)) > 0) h = fnv(h, buf, (size_t)r);
            close(fd);
        }
    }
    if (i < n && !strcmp(args[i], "+"))
        for (i++; i < n; i++) h = fnv(h, (const unsigned char *)args[i], strlen(args[i]) + 1);
    char text[32];
    int len = snprintf(text, sizeof text, "%016llx\n", (unsigned long long)h);
    for (int k = 0; k < outs; k++) {
        mkparents(args[k]);
        int fd = open(args[k], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, text, (size_t)len) != len || close(fd) != 0) {
            perror(args[k]);
            return 1;
        }
    }
    return 0;
}
