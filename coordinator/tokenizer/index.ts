export { TokenizerPool, type TokenizerPoolOptions } from './tokenizer-pool.js';
export { StreamingDetokenizer, type StreamingDetokenizerOptions } from './detokenizer.js';
export { ChatTemplateError, renderChat, templateIteratesContent, type ChatContentPart, type ChatMessage, type RenderChatOptions } from './chat-template.js';
export { TokenizerLoadError, type TokenizerInfo } from './load-tokenizer.js';
