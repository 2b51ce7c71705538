/* libFuzzer harness: the safetensors parser on any bytes, and, when the file carries an
 * architecture record, nn.load's path: the structure rebuilt without parameters, checked against
 * the file's tensors, then loaded. */
#include <stdint.h>

#include "io/safetensors.h"
#include "nn/edit.h"
#include "nn/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file *f = st_parse(data, size);
    if (!f)
        return 0;
    const char *arch = st_meta_get(f, "boengine.arch");
    nn_net *net = arch ? nn_arch_graph(arch) : NULL;
    if (net)
        nn_load_file(net, f, "input");
    nn_net_free(net);
    st_file_free(f);
    return 0;
}
