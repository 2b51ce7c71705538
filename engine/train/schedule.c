#include "train/schedule.h"

#include <math.h>
#include <stdint.h>

double nn_schedule_lr(const nn_schedule *s, int epochs, int64_t steps_per_epoch, int64_t step)
{
    double total = (double)epochs * (double)steps_per_epoch;
    double warm = s->warmup * (double)steps_per_epoch;
    if (step < warm) /* linear warm-up, the first step at lr / warm */
        return s->lr * (double)(step + 1) / ceil(warm);
    int epoch = (int)(step / (steps_per_epoch > 0 ? steps_per_epoch : 1));
    switch (s->kind) {
    case NN_LR_STEP:
        return s->lr * pow(s->gamma, s->step > 0 ? epoch / s->step : 0);
    case NN_LR_MILESTONES: {
        int reached = 0;
        for (int i = 0; i < s->nmilestones; i++)
            reached += epoch >= s->milestones[i];
        return s->lr * pow(s->gamma, reached);
    }
    case NN_LR_COSINE: {
        double span = total - warm, t = span > 0 ? ((double)step - warm) / span : 1;
        return s->lr_min + (s->lr - s->lr_min) * 0.5 * (1 + cos(M_PI * t));
    }
    default:
        return s->lr;
    }
}
