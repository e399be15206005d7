/* Prints the generated config/hookbridge.conf; the test `conffile` fails
 * when the committed file differs (regenerate with
 * build/print_config > config/hookbridge.conf). */
#include "hb/config.h"

int main(void)
{
    hb_config_print_template(stdout);
    return 0;
}
