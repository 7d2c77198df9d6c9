/* fuzz_config.c - libFuzzer target for config_parse: arbitrary text must either parse or fail
 * with a "path:line: " message, never crash or leak; a successful parse must give lookups
 * that agree with the mailbox table. */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    char err[256];
    if (config_parse(&cfg, "f", (const char *)data, size, err, sizeof err) < 0) {
        if (strncmp(err, "f:", 2) != 0)
            abort();
        return 0;
    }
    for (size_t i = 0; i < cfg.nmailboxes; i++) {
        if (!config_has_mailbox(&cfg, cfg.mailboxes[i].local, cfg.mailboxes[i].domain))
            abort();
        if (!config_is_local_domain(&cfg, cfg.mailboxes[i].domain))
            abort();
        char path[512];
        if (config_maildir_path(&cfg, cfg.mailboxes[i].local, cfg.mailboxes[i].domain, path, sizeof path)) {
            if (!strstr(cfg.maildir, "/.") && strstr(path, "/."))
                abort();
        }
    }
    config_free(&cfg);
    return 0;
}
