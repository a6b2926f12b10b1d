// llamacpp_oracle: llama.cpp (on the CPU, or on a GPU through the kit's
// Vulkan backend) as the logits oracle for shareprefill's GGUF path.
// Written for this repository against llama.h; bench/peers/llamacpp-oracle.sh
// compiles it with the llama.cpp kit's prebuilt libraries.
//
//   llamacpp_oracle tokenize MODEL.gguf TEXT_FILE OUT.json
//       llama.cpp's token ids of the file's text, with the BOS it adds
//       (llama_tokenize, add_special = true, parse_special = false), as a
//       JSON array.
//   llamacpp_oracle logits MODEL.gguf IDS.json N_GREEDY OUT_DIR
//       One prefill of the ids (one batch, every position's logits) on an
//       empty cache, then N_GREEDY greedy steps (argmax, lowest id on
//       ties), each fed back by a one-token decode. Writes
//       OUT_DIR/ref_logits.f32 (float32 [len(ids)][vocab], row-major,
//       little-endian), OUT_DIR/greedy.json (the generated ids) and
//       OUT_DIR/greedy_logits.f32 (the logits each greedy token was taken
//       from, [N_GREEDY][vocab]).
//   llamacpp_oracle ppl MODEL.gguf IDS.json CTX CHUNKS OUT.json
//       llama-perplexity's rule on the first CHUNKS windows of CTX ids:
//       window w is ids[w·CTX, (w+1)·CTX) with its first token replaced by
//       BOS, prefilled on an empty cache; the predictions of positions
//       CTX/2 … CTX−2 are scored. Writes {"window_nll": [...], "ppl": P,
//       "scored": N} (summed NLL per window, natural log, in double).
//
// LLAMACPP_ORACLE_NGL (environment) is the number of layers to offload:
// unset or 0, the model is loaded with no offload devices (the CPU backend
// alone, as before); N > 0 offloads N layers (999: all, with the output
// layer) to the first GPU device the kit's backends find (Vulkan), and the
// device's name is printed on stderr.
#include "ggml-backend.h"
#include "llama.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

static void quiet(enum ggml_log_level level, const char * text, void *) {
    if (level >= GGML_LOG_LEVEL_WARN) {
        fputs(text, stderr);
    }
}

static bool read_file(const std::string & path, std::string & out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        return false;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    out = ss.str();
    return true;
}

// read_ids parses a JSON array of non-negative integers.
static bool read_ids(const std::string & path, std::vector<llama_token> & ids) {
    std::string s;
    if (!read_file(path, s)) {
        return false;
    }
    size_t i = s.find('[');
    if (i == std::string::npos) {
        return false;
    }
    for (i++; i < s.size() && s[i] != ']'; i++) {
        if (isdigit((unsigned char) s[i])) {
            char * end = nullptr;
            ids.push_back((llama_token) strtol(s.c_str() + i, &end, 10));
            i = end - s.c_str() - 1;
        } else if (s[i] != ',' && !isspace((unsigned char) s[i])) {
            return false;
        }
    }
    return i < s.size();
}

static bool write_json_ids(const std::string & path, const std::vector<llama_token> & ids) {
    FILE * f = fopen(path.c_str(), "w");
    if (!f) {
        return false;
    }
    fputc('[', f);
    for (size_t i = 0; i < ids.size(); i++) {
        fprintf(f, i ? ",%d" : "%d", ids[i]);
    }
    fputs("]\n", f);
    return fclose(f) == 0;
}

static bool no_progress(float, void *) { return true; }

// gpu_layers reads LLAMACPP_ORACLE_NGL: 0 when unset; -1 when malformed.
static int gpu_layers() {
    const char * e = getenv("LLAMACPP_ORACLE_NGL");
    if (!e || !*e) {
        return 0;
    }
    char * end = nullptr;
    long n = strtol(e, &end, 10);
    if (*end || n < 0 || n > 100000) {
        fprintf(stderr, "llamacpp_oracle: LLAMACPP_ORACLE_NGL=%s: want a number of layers >= 0\n", e);
        return -1;
    }
    return (int) n;
}

// load loads the model for inference: on the CPU alone, or with
// LLAMACPP_ORACLE_NGL layers on the GPU devices the backends offer.
static llama_model * load(const char * path) {
    ggml_backend_load_all();
    llama_model_params mp = llama_model_default_params();
    mp.progress_callback = no_progress;
    const int ngl = gpu_layers();
    if (ngl < 0) {
        return nullptr;
    }
    static ggml_backend_dev_t none[1] = {nullptr};
    if (ngl == 0) {
        mp.devices = none;
    } else {
        int gpus = 0;
        for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
            ggml_backend_dev_t d = ggml_backend_dev_get(i);
            if (ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_GPU) {
                fprintf(stderr, "llamacpp_oracle: %s device: %s (%s), %d layers offloaded\n", gpus ? "other" : "GPU",
                        ggml_backend_dev_name(d), ggml_backend_dev_description(d), ngl);
                gpus++;
            }
        }
        if (gpus == 0) {
            fprintf(stderr, "llamacpp_oracle: LLAMACPP_ORACLE_NGL=%d but the backends offer no GPU device "
                            "(no Vulkan loader or driver? GGML_VK_VISIBLE_DEVICES?)\n", ngl);
            return nullptr;
        }
        mp.split_mode = LLAMA_SPLIT_MODE_NONE;
        mp.main_gpu = 0;
    }
    mp.n_gpu_layers = ngl;
    llama_model * m = llama_model_load_from_file(path, mp);
    if (!m) {
        fprintf(stderr, "llamacpp_oracle: cannot load %s\n", path);
    }
    return m;
}

static int tokenize(const char * model_path, const char * text_path, const char * out) {
    std::string text;
    if (!read_file(text_path, text)) {
        fprintf(stderr, "llamacpp_oracle: cannot read %s\n", text_path);
        return 1;
    }
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    ggml_backend_load_all();
    llama_model * m = llama_model_load_from_file(model_path, mp);
    if (!m) {
        fprintf(stderr, "llamacpp_oracle: cannot load %s\n", model_path);
        return 1;
    }
    const llama_vocab * v = llama_model_get_vocab(m);
    std::vector<llama_token> ids(text.size() + 8);
    int n = llama_tokenize(v, text.data(), (int32_t) text.size(), ids.data(), (int32_t) ids.size(), true, false);
    if (n < 0) {
        fprintf(stderr, "llamacpp_oracle: tokenize %s failed (%d)\n", text_path, n);
        return 1;
    }
    ids.resize(n);
    llama_model_free(m);
    if (!write_json_ids(out, ids)) {
        fprintf(stderr, "llamacpp_oracle: cannot write %s\n", out);
        return 1;
    }
    fprintf(stderr, "llamacpp_oracle: %s: %d tokens (BOS %s)\n", text_path, n, llama_vocab_get_add_bos(v) ? "added" : "not added");
    return 0;
}

static llama_token argmax(const float * x, int n) {
    int best = 0;
    for (int j = 1; j < n; j++) {
        if (x[j] > x[best]) {
            best = j;
        }
    }
    return best;
}

static int logits(const char * model_path, const char * ids_path, int n_greedy, const std::string & dir) {
    std::vector<llama_token> ids;
    if (!read_ids(ids_path, ids) || ids.empty()) {
        fprintf(stderr, "llamacpp_oracle: %s: want a JSON array of token ids\n", ids_path);
        return 1;
    }
    llama_model * m = load(model_path);
    if (!m) {
        return 1;
    }
    const int n = (int) ids.size();
    const int V = llama_vocab_n_tokens(llama_model_get_vocab(m));
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n + n_greedy;
    cp.n_batch = n;
    cp.n_ubatch = n;
    cp.n_threads = cp.n_threads_batch = (int) std::max(1u, std::thread::hardware_concurrency());
    llama_context * ctx = llama_init_from_model(m, cp);
    if (!ctx) {
        fprintf(stderr, "llamacpp_oracle: cannot make a context of %d tokens\n", n + n_greedy);
        return 1;
    }
    llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = ids[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    if (llama_decode(ctx, b) != 0) {
        fprintf(stderr, "llamacpp_oracle: decode of %d tokens failed\n", n);
        return 1;
    }
    FILE * f = fopen((dir + "/ref_logits.f32").c_str(), "wb");
    if (!f) {
        fprintf(stderr, "llamacpp_oracle: cannot write %s/ref_logits.f32\n", dir.c_str());
        return 1;
    }
    for (int i = 0; i < n; i++) {
        fwrite(llama_get_logits_ith(ctx, i), sizeof(float), V, f);
    }
    fclose(f);
    std::vector<llama_token> gen;
    FILE * g = fopen((dir + "/greedy_logits.f32").c_str(), "wb");
    if (!g) {
        fprintf(stderr, "llamacpp_oracle: cannot write %s/greedy_logits.f32\n", dir.c_str());
        return 1;
    }
    const float * last = llama_get_logits_ith(ctx, n - 1);
    for (int s = 0; s < n_greedy; s++) {
        fwrite(last, sizeof(float), V, g);
        llama_token t = argmax(last, V);
        gen.push_back(t);
        llama_batch one = llama_batch_get_one(&gen.back(), 1);
        if (llama_decode(ctx, one) != 0) {
            fprintf(stderr, "llamacpp_oracle: greedy step %d failed\n", s);
            return 1;
        }
        last = llama_get_logits_ith(ctx, -1);
    }
    fclose(g);
    if (!write_json_ids(dir + "/greedy.json", gen)) {
        fprintf(stderr, "llamacpp_oracle: cannot write %s/greedy.json\n", dir.c_str());
        return 1;
    }
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(m);
    return 0;
}

static int ppl(const char * model_path, const char * ids_path, int n_ctx, int chunks, const char * out) {
    std::vector<llama_token> ids;
    if (!read_ids(ids_path, ids) || ids.empty()) {
        fprintf(stderr, "llamacpp_oracle: %s: want a JSON array of token ids\n", ids_path);
        return 1;
    }
    if (n_ctx < 4 || chunks < 1 || (size_t) n_ctx * chunks > ids.size()) {
        fprintf(stderr, "llamacpp_oracle: ppl: %zu ids hold no %d windows of %d\n", ids.size(), chunks, n_ctx);
        return 1;
    }
    llama_model * m = load(model_path);
    if (!m) {
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(m);
    const int V = llama_vocab_n_tokens(vocab);
    const bool bos = llama_vocab_get_add_bos(vocab);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = cp.n_ubatch = n_ctx;
    cp.n_threads = cp.n_threads_batch = (int) std::max(1u, std::thread::hardware_concurrency());
    llama_context * ctx = llama_init_from_model(m, cp);
    if (!ctx) {
        fprintf(stderr, "llamacpp_oracle: cannot make a context of %d tokens\n", n_ctx);
        return 1;
    }
    const int first = n_ctx / 2;
    llama_batch b = llama_batch_init(n_ctx, 0, 1);
    std::vector<double> nll(chunks);
    double total = 0;
    for (int w = 0; w < chunks; w++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        const llama_token * win = ids.data() + (size_t) w * n_ctx;
        for (int i = 0; i < n_ctx; i++) {
            b.token[i] = (i == 0 && bos) ? llama_vocab_bos(vocab) : win[i];
            b.pos[i] = i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = i >= first;
        }
        b.n_tokens = n_ctx;
        if (llama_decode(ctx, b) != 0) {
            fprintf(stderr, "llamacpp_oracle: ppl: decode of window %d failed\n", w);
            return 1;
        }
        double sum = 0;
        for (int i = first; i <= n_ctx - 2; i++) {
            const float * x = llama_get_logits_ith(ctx, i);
            float mx = x[0];
            for (int j = 1; j < V; j++) {
                mx = std::max(mx, x[j]);
            }
            double z = 0;
            for (int j = 0; j < V; j++) {
                z += std::exp((double) x[j] - mx);
            }
            sum += std::log(z) + mx - x[win[i + 1]];
        }
        nll[w] = sum;
        total += sum;
    }
    const int scored = chunks * (n_ctx - 1 - first);
    FILE * f = fopen(out, "w");
    if (!f) {
        fprintf(stderr, "llamacpp_oracle: cannot write %s\n", out);
        return 1;
    }
    fputs("{\"window_nll\": [", f);
    for (int w = 0; w < chunks; w++) {
        fprintf(f, w ? ", %.6f" : "%.6f", nll[w]);
    }
    fprintf(f, "], \"ppl\": %.6f, \"scored\": %d}\n", std::exp(total / scored), scored);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(m);
    return fclose(f) == 0 ? 0 : 1;
}

int main(int argc, char ** argv) {
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "tokenize" && argc == 5) {
        return tokenize(argv[2], argv[3], argv[4]);
    }
    if (mode == "logits" && argc == 6) {
        return logits(argv[2], argv[3], atoi(argv[4]), argv[5]);
    }
    if (mode == "ppl" && argc == 7) {
        return ppl(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), argv[6]);
    }
    fprintf(stderr, "usage: llamacpp_oracle tokenize MODEL.gguf TEXT_FILE OUT.json\n"
                    "       llamacpp_oracle logits MODEL.gguf IDS.json N_GREEDY OUT_DIR\n"
                    "       llamacpp_oracle ppl MODEL.gguf IDS.json CTX CHUNKS OUT.json\n"
                    "env LLAMACPP_ORACLE_NGL: layers offloaded to the GPU (default 0: the CPU alone)\n");
    return 2;
}
