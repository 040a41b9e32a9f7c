// The image flags as the engine takes them (EngineLimits.images): one place that maps --max-images-per-prompt & co.
import type { ImageLimits } from '../../coordinator/vision/index.js';
import type { LaunchConfig } from './types.js';

export function imageLimitsOf(o: Pick<LaunchConfig, 'maxImagesPerPrompt' | 'maxImageBytes' | 'maxImagePixels' | 'imageFetchTimeoutMs' |
  'allowedLocalMediaPath' | 'allowedMediaDomains'>): ImageLimits {
  return { maxImagesPerPrompt: o.maxImagesPerPrompt, maxImageBytes: o.maxImageBytes, maxImagePixels: o.maxImagePixels,
    fetchTimeoutMs: o.imageFetchTimeoutMs, allowedLocalMediaPath: o.allowedLocalMediaPath, allowedMediaDomains: [...o.allowedMediaDomains] };
}
