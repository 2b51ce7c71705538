/* libFuzzer harness: architecture records (the JSON of boengine.arch) rebuilt as structures and
 * loaded from a small valid file: a record may ask for any network, and must allocate nothing
 * before the file's tensors agree with it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "io/safetensors.h"
#include "nn/edit.h"
#include "nn/net.h"

/* An MLP 4-3-2 (fc1, fc2) as a safetensors file in memory, made once. */
static st_file *weights(void)
{
    static st_file *f;
    if (f)
        return f;
    static const char header[] =
        "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
        "\"fc1.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]},"
        "\"fc2.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[60,84]},"
        "\"fc2.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[84,92]}}";
    size_t hlen = sizeof header - 1, size = 8 + hlen + 92;
    unsigned char *buf = calloc(1, size);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    f = st_parse(buf, size);
    free(buf);
    if (!f)
        abort();
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = malloc(size + 1);
    if (!json)
        return 0;
    memcpy(json, data, size);
    json[size] = '\0';
    nn_net *net = nn_arch_graph(json);
    if (net) {
        nn_load_file(net, weights(), "weights");
        nn_net_free(net);
    }
    free(json);
    return 0;
}
