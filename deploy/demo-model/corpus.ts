// Training text for the demo model's byte-level BPE tokenizer. Written for this project; plain English
// prose about serving language models, so the merges it yields cover common words, spaces and punctuation.
export const DEMO_CORPUS = `
An inference server is a program that keeps a language model in memory and answers requests for text.
A client sends a prompt, the server turns the prompt into tokens, and the model predicts one token at a time
until it reaches a stop condition. The stop condition might be a maximum number of new tokens, a special
end token, or a stop string that the client asked for. Each new token is sent back as soon as it is known,
so the person on the other side sees the answer appear word by word instead of waiting for the whole reply.

The hard part of serving is not the arithmetic of a single request. It is keeping the accelerator busy while
many people ask different questions at once. A graphics processor can multiply large matrices very quickly,
but a single conversation only produces one row of work per step. If the server ran each request alone, most
of the chip would sit idle while the weights were read from memory again and again. Batching fixes this: the
server gathers the next token of many requests into one step, reads the weights once, and does the work for
all of them together. The cost of reading the weights is shared, and the throughput grows with the batch.

Continuous batching goes one step further. Requests do not arrive together and they do not finish together.
Instead of waiting for a whole batch to end, the scheduler adds new requests and removes finished ones at every
step. A short question that arrives late does not have to wait behind a long essay that started early. The
scheduler looks at the waiting queue, checks how much memory is free, and decides which requests to run next.

Memory is the other limit. For every token it has seen, the model keeps keys and values for each layer, so
that later tokens can attend to earlier ones without computing them again. This key and value cache grows
with the length of the conversation. A paged cache splits it into small blocks of a fixed number of tokens,
much like pages in an operating system. A block table maps each sequence to its blocks, which need not be next
to each other in memory. When a sequence ends, its blocks go back to the free list and can be used at once by
another request. When memory runs out, the scheduler can pause a sequence, free its blocks, and compute them
again later. This is called preemption by recomputation, and it keeps the server running under heavy load.

Low rank adaptation, often called LoRA, is a cheap way to teach a model a new skill. Instead of changing the
large weight matrices, training learns two small matrices for each chosen layer: one that shrinks the input to
a narrow rank and one that expands it back to the output size. The product of the two is added to the output of
the frozen layer, scaled by alpha divided by the rank. Because the adapters are small, a server can keep many
of them in memory next to one copy of the base model. A request names the adapter it wants, and requests that
name different adapters can still share a batch. The base matrix multiply is done once for every token, and
each token then adds the small correction from its own adapter. Kernels for this group tokens that use the same
adapter into segments, so the work stays efficient even when every request in the batch uses a different one.

Large models do not fit on one device, so their layers are split across several. In tensor parallelism each
device holds a slice of every weight matrix. A column parallel layer splits the output features, so each device
computes a part of the result with no talking at all. A row parallel layer splits the input features, so each
device computes a partial sum, and one all reduce adds the parts together. The adapters follow the same plan:
the shrink matrix is copied or split to match the input, the expand matrix is split to match the output, and the
small correction is added to the partial sum before the reduction. The answer is the same as on a single device.

Tokenizers deserve more care than they usually get. A byte level tokenizer starts from the two hundred and
fifty six possible bytes, so it can encode any text at all: English, Chinese, emoji, or source code. Training
merges the most frequent pair of symbols again and again, and each merge becomes a new token. Common words end
up as single tokens, while rare words are spelled out in pieces. When the server streams text back, it must be
careful: one character can be split over two tokens, and printing half of it would show a broken symbol. The
streaming decoder waits until the bytes form a whole character before it sends anything to the client.

A good server is also honest about its limits. It checks every request before doing any work, and it returns a
clear error when a prompt is too long, when an adapter cannot be found, or when the queue is full. It reports
metrics so that operators can see the queue depth, the batch size, the time to first token, and the time per
output token. It shuts down cleanly, finishing or cancelling the requests in flight and freeing every block of
memory it holds. Logs and traces tell the story of a single request from the moment it arrives until the last
token is written, even when the work is spread over several processes and machines.

Here is a short example of a session. The user asks: "What is the capital of France?" The model answers: "The
capital of France is Paris." The user then asks for a list of three colors, and the model writes: "Red, green,
and blue." Another user, at the same moment, asks the server to summarize a long report in two sentences, using
an adapter that was trained on legal documents. Both answers are produced in the same steps, on the same device,
with the same copy of the base weights, and neither user can tell that the other one was there.

Numbers matter when you plan capacity. A model with seven billion parameters stored in sixteen bit floats needs
about fourteen gigabytes just for its weights. On a device that can read three terabytes per second, a single
decoding step must take at least four or five milliseconds, no matter how small the batch is. With a batch of
thirty two requests, that same step yields thirty two tokens, which is why batching is so important. Prefill,
the first pass over the prompt, is limited by arithmetic instead: it needs about two operations per parameter
for every prompt token, so a long prompt takes longer to start but then streams at the usual speed.

Testing an inference server is a matter of comparing numbers with a trusted reference. Run the same tiny model in
a well known library and in the new server, feed both the same tokens, and check that the logits agree to within
a small tolerance. Do the same with one adapter, with several adapters mixed in one batch, and with the model
split over two or more devices. If all of these agree, the server computes the right thing, and the remaining
questions are about speed, memory, and how gracefully it behaves when things go wrong.

Questions people often ask: How many adapters can I load? As many as fit in host memory, with the most recently
used ones kept on the device. Can I merge adapters for one request? Yes, with a weighted sum or with methods that
trim small values and resolve sign conflicts. What happens when a device fails? The requests in flight fail with a
clear message, the process is restarted, and new requests are served again once it is back. Why stream tokens?
Because people read while the model writes, and the first words matter more than the last ones.
`;
