//! The bot's message catalogue: every sentence it says, keyed by message id, in English and
//! Russian, as a plain table.
//!
//! A template is plain text with three marks: `*bold*`, `` `code` `` and `{argument}`. Plain text
//! and bold text are MarkdownV2-escaped when rendered, code with the code-span rules; arguments
//! are inserted as given (the caller escapes them: `messages::plain`, `code`, `bold`). Button
//! labels and toasts are rendered with `render_plain` (no markup there).

use streambot_core::duration_text::{
    DurationUnits, ENGLISH_DURATION_UNITS, RUSSIAN_DURATION_UNITS,
};

use crate::markdown::{escape_markdown_v2, escape_markdown_v2_code};

/// A language of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Language {
    #[default]
    English,
    Russian,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::English, Language::Russian];

    pub fn code(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::Russian => "ru",
        }
    }

    /// From a stored choice or Telegram's `language_code` (`ru`, `ru-RU`, `en-GB`).
    pub fn from_code(code: &str) -> Option<Language> {
        let primary = code
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_lowercase();
        match primary.as_str() {
            "en" | "english" | "английский" => Some(Language::English),
            "ru" | "russian" | "русский" | "рус" => Some(Language::Russian),
            _ => None,
        }
    }

    pub fn duration_units(self) -> DurationUnits {
        match self {
            Language::English => ENGLISH_DURATION_UNITS,
            Language::Russian => RUSSIAN_DURATION_UNITS,
        }
    }
}

/// Plural forms a count can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluralForm {
    One,
    Few,
    Many,
}

/// The plural form of `count` in `language` (Russian: 1, 21 → one; 2-4, 22-24 → few; else many).
pub fn plural_form(language: Language, count: u64) -> PluralForm {
    match language {
        Language::English => {
            if count == 1 {
                PluralForm::One
            } else {
                PluralForm::Many
            }
        }
        Language::Russian => {
            let last_two = count % 100;
            let last = count % 10;
            if last == 1 && last_two != 11 {
                PluralForm::One
            } else if (2..=4).contains(&last) && !(12..=14).contains(&last_two) {
                PluralForm::Few
            } else {
                PluralForm::Many
            }
        }
    }
}

macro_rules! message_keys {
    ($($key:ident),* $(,)?) => {
        /// The id of one sentence of the catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Key { $($key),* }
        impl Key {
            pub const ALL: &'static [Key] = &[$(Key::$key),*];
        }
    };
}

message_keys!(
    Welcome,
    Help,
    NotUnderstood,
    NothingToRead,
    UnreadableMessage,
    EditedMessageIgnored,
    DidYouMean,
    DidYouMeanWithLinks,
    WhichLinks,
    RecordWithoutUrl,
    DurationUnrecognised,
    DurationZero,
    DurationTooLong,
    BadQuality,
    BadJobId,
    BadUserId,
    UnknownAdminCommand,
    RefusedLink,
    RateLimited,
    TooManyJobs,
    DiskQuotaReached,
    NoSuchJob,
    AdminNoSuchJob,
    NoLiveJobs,
    WhichJob,
    Stopping,
    CancelledNothingRecorded,
    Paused,
    Resumed,
    CantStop,
    CantPause,
    CantResume,
    CancelOnlyQueued,
    InternalError,
    StateQueued,
    StateStarting,
    StateRecording,
    StatePaused,
    StateFinalizing,
    StateUploading,
    StateCompleted,
    StateFailed,
    StateCancelled,
    StateSending,
    StateDelivered,
    StateDeliveryFailed,
    StateStopped,
    PlanUpTo,
    PlanFor,
    PlanCapped,
    QualityLine,
    WaitingForLiveLine,
    StartTimeNotSupported,
    StartTimeTomorrowNotSupported,
    MediaRecorded,
    TimeSinceStart,
    GapsLost,
    NoGaps,
    PartNumber,
    StoppingSoon,
    FailureReason,
    FailureInvalidLink,
    FailurePrivateAddress,
    FailureNotFound,
    FailureForbidden,
    FailureServerError,
    FailureUnreachable,
    FailureWebPage,
    FailureNotAPlaylist,
    FailureProtected,
    FailureNotMedia,
    FailureLimitReached,
    FailureStalled,
    FailureInternal,
    FailureUnknown,
    JobListTitle,
    AdminJobListTitle,
    JobListEmpty,
    JobListMore,
    JobOwner,
    FinalSummary,
    CompleteNoGaps,
    CompleteWithGaps,
    FilesSentOne,
    FilesSentFew,
    FilesSentMany,
    FileCountOne,
    FileCountFew,
    FileCountMany,
    NothingToSend,
    FileKeptOnServer,
    DeliveryFailed,
    FailedWithRecording,
    Caption,
    CaptionGaps,
    CaptionDamaged,
    FilesDamaged,
    PartsJoined,
    DeleteNeedsId,
    DeleteWhileLive,
    DeleteConfirm,
    Deleted,
    DeleteFailed,
    DeleteKept,
    AdminOnly,
    AdminOverview,
    AdminHelp,
    AdminStopped,
    OwnerToldStopped,
    OwnerToldDeleted,
    VipAdded,
    VipRemoved,
    LanguageChoice,
    LanguageSet,
    LanguageUnknown,
    SenderRefused,
    ButtonStop,
    ButtonPause,
    ButtonResume,
    ButtonStatus,
    ButtonCancel,
    ButtonSendAgain,
    ButtonDelete,
    ButtonKeep,
    ButtonMore,
    ToastStopping,
    ToastPausing,
    ToastResuming,
    ToastCancelling,
    ToastAlreadyFinished,
    ToastNotYours,
    ToastChatAdministratorsOnly,
    ToastSlowDown,
    ToastTryAgain,
    ToastStarting,
    ToastExpired,
    ToastUpdated,
    ToastDeleting,
    ToastKept,
    ToastSending,
    MenuRecord,
    MenuStop,
    MenuPause,
    MenuResume,
    MenuStatus,
    MenuList,
    MenuCancel,
    MenuDelete,
    MenuLanguage,
    MenuHelp,
    ImpossibleTime,
    UnknownTimeZone,
    RepeatWithoutTime,
    DayWithoutTime,
    Contradiction,
    ClipLength,
    ScheduleCreated,
    ScheduleInThePast,
    ScheduleTooMany,
    ScheduleOverlapsTooMany,
    ScheduleNeedsOneLink,
    ScheduleDurationCapped,
    ScheduleListTitle,
    ScheduleListEmpty,
    ScheduleLine,
    ScheduleCancelled,
    ScheduleNotFound,
    RecurrenceOnce,
    RecurrenceDaily,
    RecurrenceWeekly,
    WeekdayNames,
    TimeZoneCurrent,
    TimeZoneSet,
    OptionsLine,
    OptionFromStart,
    OptionSubtitles,
    OptionAudioLanguage,
    OptionAllAudio,
    OptionWaitForLive,
    ClipRequested,
    ClipNotLive,
    ClipBusy,
    ClipNothingYet,
    ClipFailed,
    ClipCaption,
    ButtonCancelSchedule,
    ButtonClip,
    ToastScheduleCancelled,
    ToastClipping,
    MenuSchedule,
    MenuTimeZone,
    MenuClip,
    ToastAlreadySending,
    ResendFilesDeleted,
    RecordingExpires,
    DiskFilling,
    DiskFreed,
    DiskFullNothingToDelete,
    RepeatNotUnderstood,
    StartInNotSupported,
    EndWithoutStart,
    ScheduleListMore,
);

use Key::*;
use Language::{English as En, Russian as Ru};

/// The catalogue: (message id, language, template).
const CATALOGUE: &[(Key, Language, &str)] = &[
    (
        Welcome,
        En,
        "*StreamBot records live streams (HLS / .m3u8 links).*\n\nSend a link, or for example:\n`/record https://example.com/live.m3u8 2h high`\n`record https://example.com/live.m3u8 for 90 minutes audio only`\n\nThen /list, /status, /pause, /resume, /stop. /help for more, /language to change the language.",
    ),
    (
        Welcome,
        Ru,
        "*StreamBot записывает прямые трансляции (HLS / ссылки .m3u8).*\n\nПришлите ссылку, например:\n`/record https://example.com/live.m3u8 2h high`\n`запиши https://example.com/live.m3u8 на 1 час 30 минут`\n\nДальше /list, /status, /pause, /resume, /stop. Подробнее: /help, язык: /language.",
    ),
    (
        Help,
        En,
        "*Commands*\n`/record <link> [duration] [quality]` – start recording. Duration like 2h, 90 min, 1h30m, 1:30:00; quality best, high, medium, low, worst, 720p or audio.\n`/stop [ID]` – stop and receive the recording.\n`/pause [ID]` – pause (the paused time is not recorded).\n`/resume [ID]` – resume.\n`/status [ID]` – progress of a recording.\n`/list` – your recordings.\n`/cancel [ID]` – cancel a recording that has not started yet.\n`/delete ID` – delete a finished recording's files.\n`/language en|ru` – the bot's language.\n`record <link> at 20:00 for 2h` – schedule (also `tomorrow 21:30 for 90 min`, `every Friday at 20:00 for 2 hours`).\n`/schedule` – your schedules, with Cancel buttons.\n`/timezone Europe/Berlin` – the zone your times are read in.\n`wait up to 6 h` – wait for a stream that has not started yet.\n`from the start` – record what the stream still offers from its beginning.\n`with subtitles`, `subtitles en` – record subtitles too.\n`in German`, `audio de` – the audio language; `all audio` – every audio track.\n`/clip ID 5m` – the last minutes of a live recording as a file.\n\nPlain words work too: \"record <link> for 2 hours high quality\", \"pause it\", \"what's recording?\". Without a duration a recording stops at the limit said in its message.",
    ),
    (
        Help,
        Ru,
        "*Команды*\n`/record <ссылка> [длительность] [качество]` – начать запись. Длительность: 2h, 90 мин, 1 ч 30 мин, 1:30:00; качество best, high, medium, low, worst, 720p или audio.\n`/stop [ID]` – остановить и получить запись.\n`/pause [ID]` – пауза (время паузы не записывается).\n`/resume [ID]` – продолжить.\n`/status [ID]` – ход записи.\n`/list` – ваши записи.\n`/cancel [ID]` – отменить запись, которая ещё не началась.\n`/delete ID` – удалить файлы готовой записи.\n`/language en|ru` – язык бота.\n`запиши <ссылка> в 20:00 на 2 часа` – по расписанию (и `завтра в 21:30 на 90 минут`, `каждую пятницу в 20:00 на 2 часа`).\n`/schedule` – ваши расписания с кнопками отмены.\n`/timezone Europe/Moscow` – пояс, по которому читается время.\n`ждать до 6 часов` – дождаться трансляции, которая ещё не началась.\n`с начала` – записать всё, что трансляция ещё хранит с начала.\n`с субтитрами`, `субтитры en` – записать и субтитры.\n`на немецком`, `audio de` – язык звука; `all audio` – все дорожки.\n`/clip ID 5m` – последние минуты идущей записи файлом.\n\nМожно и словами: «запиши <ссылка> на 2 часа», «пауза», «что записывается?». Без длительности запись остановится на пределе, указанном в её сообщении.",
    ),
    (
        NotUnderstood,
        En,
        "I didn't understand that. To record, send a link, for example:\n`/record https://example.com/live.m3u8 2h`\n/help lists everything I can do.",
    ),
    (
        NotUnderstood,
        Ru,
        "Я не понял. Чтобы записать, пришлите ссылку, например:\n`/record https://example.com/live.m3u8 2h`\nВсё, что я умею: /help.",
    ),
    (
        NothingToRead,
        En,
        "I record live streams from links. Send me a link (a .m3u8 playlist or a live video link), for example:\n`https://example.com/live.m3u8 2h`",
    ),
    (
        NothingToRead,
        Ru,
        "Я записываю трансляции по ссылкам. Пришлите ссылку (плейлист .m3u8 или ссылку на прямой эфир), например:\n`https://example.com/live.m3u8 2h`",
    ),
    (
        EditedMessageIgnored,
        En,
        "I don't act on edited messages. Send the corrected message again, for example:\n`/record https://example.com/live.m3u8 2h`",
    ),
    (
        EditedMessageIgnored,
        Ru,
        "Отредактированные сообщения я не выполняю. Пришлите исправленное сообщение ещё раз, например:\n`/record https://example.com/live.m3u8 2h`",
    ),
    (
        UnreadableMessage,
        En,
        "I could not read that message: Telegram sent it in a form this bot does not know yet. Send the link as plain text, for example:\n`https://example.com/live.m3u8 2h`",
    ),
    (
        UnreadableMessage,
        Ru,
        "Не получилось прочитать это сообщение: Telegram прислал его в виде, который бот пока не знает. Пришлите ссылку обычным текстом, например:\n`https://example.com/live.m3u8 2h`",
    ),
    (DidYouMean, En, "Did you mean {command}?"),
    (DidYouMean, Ru, "Вы имели в виду {command}?"),
    (
        DidYouMeanWithLinks,
        En,
        "Did you mean {command}? Tap the link below to record it.",
    ),
    (
        DidYouMeanWithLinks,
        Ru,
        "Вы имели в виду {command}? Нажмите на ссылку ниже, чтобы записать её.",
    ),
    (
        WhichLinks,
        En,
        "You sent {links} links, and {free} more recordings fit in your limit. Tap the ones to record.",
    ),
    (
        WhichLinks,
        Ru,
        "Вы прислали ссылок: {links}, а в ваш лимит помещается ещё записей: {free}. Нажмите на те, что записать.",
    ),
    (
        RecordWithoutUrl,
        En,
        "Which stream? Send the link with it, for example:\n`/record https://example.com/live.m3u8 2h high`",
    ),
    (
        RecordWithoutUrl,
        Ru,
        "Какую трансляцию? Пришлите ссылку, например:\n`/record https://example.com/live.m3u8 2h high`",
    ),
    (
        DurationUnrecognised,
        En,
        "I can't read {given} as a duration. Write it like 2h, 90 min, 1h30m or 45s.",
    ),
    (
        DurationUnrecognised,
        Ru,
        "Не понимаю длительность {given}. Напишите, например, 2 ч, 90 мин, 1h30m или 45 с.",
    ),
    (DurationZero, En, "A duration must be more than zero."),
    (DurationZero, Ru, "Длительность должна быть больше нуля."),
    (
        DurationTooLong,
        En,
        "{given} is longer than the longest recording allowed ({hours} h).",
    ),
    (
        DurationTooLong,
        Ru,
        "{given} — дольше самой длинной разрешённой записи ({hours} ч).",
    ),
    (
        BadQuality,
        En,
        "{given} is not a quality; use best, high, medium, low, worst, audio or a height like 720p.",
    ),
    (
        BadQuality,
        Ru,
        "{given} — это не качество; используйте best, high, medium, low, worst, audio или высоту, например 720p.",
    ),
    (
        BadJobId,
        En,
        "{given} is not a recording id; ids are 8 characters like `A3F2B1C9` (/list shows yours).",
    ),
    (
        BadJobId,
        Ru,
        "{given} — не номер записи; номер состоит из 8 символов, например `A3F2B1C9` (ваши: /list).",
    ),
    (
        BadUserId,
        En,
        "{given} is not a Telegram user id (a number).",
    ),
    (
        BadUserId,
        Ru,
        "{given} — не id пользователя Telegram (нужно число).",
    ),
    (
        UnknownAdminCommand,
        En,
        "There is no admin command {given}; /admin help lists them.",
    ),
    (
        UnknownAdminCommand,
        Ru,
        "Нет команды администратора {given}; список: /admin help.",
    ),
    (RefusedLink, En, "I can't record that link: {reason}"),
    (RefusedLink, Ru, "Эту ссылку записать нельзя: {reason}"),
    (
        RateLimited,
        En,
        "You're sending messages too fast (limit: {maximum} in {window} s). Try again in {retry} s.",
    ),
    (
        RateLimited,
        Ru,
        "Слишком много сообщений (предел: {maximum} за {window} с). Попробуйте через {retry} с.",
    ),
    (
        TooManyJobs,
        En,
        "You already have {limit} recordings running, your limit. Stop one (/list shows them) and try again; a slot frees up as soon as one finishes.",
    ),
    (
        TooManyJobs,
        Ru,
        "У вас уже идут записи: {limit}, это ваш предел. Остановите одну (/list) и попробуйте снова; место освободится, как только одна закончится.",
    ),
    (
        DiskQuotaReached,
        En,
        "Your storage is full: {used} of {limit} used. Delete old recordings (/delete) or wait until they expire, then try again.",
    ),
    (
        DiskQuotaReached,
        Ru,
        "Ваше хранилище заполнено: занято {used} из {limit}. Удалите старые записи (/delete) или дождитесь их удаления и попробуйте снова.",
    ),
    (
        NoSuchJob,
        En,
        "No recording {id} of yours. /list shows your recordings.",
    ),
    (NoSuchJob, Ru, "У вас нет записи {id}. Ваши записи: /list."),
    (AdminNoSuchJob, En, "There is no recording {id}."),
    (AdminNoSuchJob, Ru, "Записи {id} нет."),
    (
        NoLiveJobs,
        En,
        "You have no recording running. Send a link to start one.",
    ),
    (
        NoLiveJobs,
        Ru,
        "Сейчас у вас ничего не записывается. Пришлите ссылку, чтобы начать.",
    ),
    (WhichJob, En, "Which recording?"),
    (WhichJob, Ru, "Какую запись?"),
    (
        Stopping,
        En,
        "Stopping {id}: you'll get what was recorded in a moment.",
    ),
    (
        Stopping,
        Ru,
        "Останавливаю {id}: запись придёт через минуту.",
    ),
    (
        CancelledNothingRecorded,
        En,
        "Cancelled {id}; nothing was recorded.",
    ),
    (
        CancelledNothingRecorded,
        Ru,
        "Запись {id} отменена; ничего не записано.",
    ),
    (
        Paused,
        En,
        "Paused {id}. /resume continues it; the paused time is not recorded.",
    ),
    (
        Paused,
        Ru,
        "Запись {id} на паузе. /resume продолжит; время паузы не записывается.",
    ),
    (Resumed, En, "Resumed {id}."),
    (Resumed, Ru, "Запись {id} продолжается."),
    (CantStop, En, "Can't stop {id}: it is {state}."),
    (CantStop, Ru, "Нельзя остановить {id}: {state}."),
    (CantPause, En, "Can't pause {id}: it is {state}."),
    (CantPause, Ru, "Нельзя поставить {id} на паузу: {state}."),
    (CantResume, En, "Can't resume {id}: it is {state}."),
    (CantResume, Ru, "Нельзя продолжить {id}: {state}."),
    (
        CancelOnlyQueued,
        En,
        "Recording {id} has already started; /stop keeps what was recorded and sends it to you.",
    ),
    (
        CancelOnlyQueued,
        Ru,
        "Запись {id} уже идёт; /stop сохранит записанное и пришлёт вам.",
    ),
    (
        InternalError,
        En,
        "Something went wrong on my side; nothing you recorded is lost. Please try again in a minute.",
    ),
    (
        InternalError,
        Ru,
        "У меня что-то пошло не так; записанное не потеряно. Попробуйте ещё раз через минуту.",
    ),
    (StateQueued, En, "checking the link…"),
    (StateQueued, Ru, "проверяю ссылку…"),
    (StateStarting, En, "checking the link…"),
    (StateStarting, Ru, "проверяю ссылку…"),
    (StateRecording, En, "recording"),
    (StateRecording, Ru, "идёт запись"),
    (StatePaused, En, "paused"),
    (StatePaused, Ru, "на паузе"),
    (StateFinalizing, En, "preparing the file…"),
    (StateFinalizing, Ru, "готовлю файл…"),
    (StateUploading, En, "storing the file…"),
    (StateUploading, Ru, "сохраняю файл…"),
    (StateCompleted, En, "finished"),
    (StateCompleted, Ru, "готово"),
    (StateFailed, En, "failed"),
    (StateFailed, Ru, "не удалось"),
    (StateCancelled, En, "cancelled"),
    (StateCancelled, Ru, "отменена"),
    (StateSending, En, "sending the file…"),
    (StateSending, Ru, "отправляю файл…"),
    (StateDelivered, En, "done"),
    (StateDelivered, Ru, "готово"),
    (StateDeliveryFailed, En, "recorded, but not sent"),
    (StateDeliveryFailed, Ru, "записано, но не отправлено"),
    (StateStopped, En, "stopped"),
    (StateStopped, Ru, "остановлена"),
    (
        PlanUpTo,
        En,
        "Up to {cap}: to record for another length, send the link with a duration (like 3h). Stop ends it sooner.",
    ),
    (
        PlanUpTo,
        Ru,
        "Не дольше {cap}: для другой длительности пришлите ссылку с ней (например, 3 ч). Стоп закончит раньше.",
    ),
    (PlanFor, En, "For {duration}. Stop ends it sooner."),
    (PlanFor, Ru, "На {duration}. Стоп закончит раньше."),
    (
        PlanCapped,
        En,
        "You asked for {asked}, but recordings are limited to {cap}: this one stops then. Stop ends it sooner.",
    ),
    (
        PlanCapped,
        Ru,
        "Вы просили {asked}, но записи ограничены {cap}: эта остановится тогда. Стоп закончит раньше.",
    ),
    (QualityLine, En, "Quality: {quality}"),
    (QualityLine, Ru, "Качество: {quality}"),
    (
        WaitingForLiveLine,
        En,
        "Waiting for the stream to start — next check at {time} UTC",
    ),
    (
        WaitingForLiveLine,
        Ru,
        "Жду начала трансляции — следующая проверка в {time} UTC",
    ),
    (
        StartTimeNotSupported,
        En,
        "{time} looks like a start time, not a length. I can't schedule recordings yet, so I'm recording now.",
    ),
    (
        StartTimeNotSupported,
        Ru,
        "{time} похоже на время начала, а не на длительность. Запись по расписанию пока не умею, поэтому записываю сейчас.",
    ),
    (
        StartTimeTomorrowNotSupported,
        En,
        "Tomorrow {time} looks like a start time, not a length. I can't schedule recordings yet: send the link again when the stream starts.",
    ),
    (
        StartTimeTomorrowNotSupported,
        Ru,
        "Завтра в {time} — это время начала, а не длительность. Запись по расписанию пока не умею: пришлите ссылку, когда трансляция начнётся.",
    ),
    (
        MediaRecorded,
        En,
        "Recorded (media): {media} · {size} · {bitrate}",
    ),
    (
        MediaRecorded,
        Ru,
        "Записано (видео): {media} · {size} · {bitrate}",
    ),
    (TimeSinceStart, En, "Time since start: {elapsed}"),
    (TimeSinceStart, Ru, "С начала прошло: {elapsed}"),
    (
        GapsLost,
        En,
        "⚠ {segments} segments lost ({seconds}) when the stream could not be reached",
    ),
    (
        GapsLost,
        Ru,
        "⚠ потеряно сегментов: {segments} ({seconds}), когда трансляция была недоступна",
    ),
    (NoGaps, En, "No gaps"),
    (NoGaps, Ru, "Без пропусков"),
    (PartNumber, En, "Part {part}"),
    (PartNumber, Ru, "Часть {part}"),
    (StoppingSoon, En, "Stopping…"),
    (StoppingSoon, Ru, "Останавливаю…"),
    (FailureReason, En, "Details: {error}"),
    (FailureReason, Ru, "Подробности: {error}"),
    (
        FailureInvalidLink,
        En,
        "This is not a link I can open. Send the http(s) link of the stream.",
    ),
    (
        FailureInvalidLink,
        Ru,
        "Эту ссылку открыть нельзя. Пришлите http(s)-ссылку на трансляцию.",
    ),
    (
        FailurePrivateAddress,
        En,
        "The link points to a private or local address, which I am not allowed to reach.",
    ),
    (
        FailurePrivateAddress,
        Ru,
        "Ссылка ведёт на частный или локальный адрес, а туда мне обращаться нельзя.",
    ),
    (
        FailureNotFound,
        En,
        "The server says there is no stream at this link (404). It may not have started yet, or it has ended: send the link again when it is live, or get a fresh link.",
    ),
    (
        FailureNotFound,
        Ru,
        "Сервер отвечает, что по этой ссылке трансляции нет (404). Возможно, она ещё не началась или уже закончилась: пришлите ссылку, когда эфир пойдёт, или возьмите свежую.",
    ),
    (
        FailureForbidden,
        En,
        "The server refused access (403). The link may need the site's cookies or a login, be limited to some countries, or have expired: open the page again and copy a fresh link.",
    ),
    (
        FailureForbidden,
        Ru,
        "Сервер отказал в доступе (403). Ссылке могут быть нужны cookies сайта или вход, она может работать не во всех странах или устарела: откройте страницу снова и скопируйте свежую ссылку.",
    ),
    (
        FailureServerError,
        En,
        "The stream's server had an error. Try again in a few minutes.",
    ),
    (
        FailureServerError,
        Ru,
        "На сервере трансляции ошибка. Попробуйте через несколько минут.",
    ),
    (
        FailureUnreachable,
        En,
        "I could not reach the stream's server. Check the link, or try again later.",
    ),
    (
        FailureUnreachable,
        Ru,
        "Не удалось связаться с сервером трансляции. Проверьте ссылку или попробуйте позже.",
    ),
    (
        FailureWebPage,
        En,
        "This link is a web page, not a stream. To find the stream's link: open the page in a browser, press F12, open the Network tab, type m3u8 in the filter, start the video, then copy the .m3u8 address that appears and send it to me.",
    ),
    (
        FailureWebPage,
        Ru,
        "Это ссылка на веб-страницу, а не на трансляцию. Как найти ссылку на поток: откройте страницу в браузере, нажмите F12, вкладка Network (Сеть), введите m3u8 в фильтр, запустите видео, скопируйте появившийся адрес .m3u8 и пришлите мне.",
    ),
    (
        FailureNotAPlaylist,
        En,
        "The link does not lead to a stream I can read (not an HLS playlist or a media stream). Send the .m3u8 link of the stream.",
    ),
    (
        FailureNotAPlaylist,
        Ru,
        "По ссылке нет потока, который я могу прочитать (не плейлист HLS и не медиапоток). Пришлите ссылку .m3u8 на трансляцию.",
    ),
    (
        FailureProtected,
        En,
        "This stream is protected (DRM); it cannot be recorded.",
    ),
    (
        FailureProtected,
        Ru,
        "Трансляция защищена (DRM); записать её нельзя.",
    ),
    (
        FailureNotMedia,
        En,
        "The server sent something that is not video or audio. The link may have expired or be blocked: get a fresh one.",
    ),
    (
        FailureNotMedia,
        Ru,
        "Сервер прислал не видео и не звук. Ссылка могла устареть или быть заблокирована: возьмите свежую.",
    ),
    (
        FailureLimitReached,
        En,
        "A limit was reached (the size of the stream's playlist, its number of segments, or your storage). Whatever was recorded is sent to you.",
    ),
    (
        FailureLimitReached,
        Ru,
        "Достигнут предел (размер плейлиста, число сегментов или ваше хранилище). Всё, что записано, будет отправлено вам.",
    ),
    (
        FailureStalled,
        En,
        "The stream stopped sending video for too long; it may have ended. Whatever was recorded is sent to you.",
    ),
    (
        FailureStalled,
        Ru,
        "Трансляция слишком долго не присылала видео; возможно, она закончилась. Всё, что записано, будет отправлено вам.",
    ),
    (
        FailureInternal,
        En,
        "Something went wrong on my side. Please try again; if it keeps happening, tell the operator.",
    ),
    (
        FailureInternal,
        Ru,
        "У меня что-то пошло не так. Попробуйте ещё раз; если повторится, сообщите администратору.",
    ),
    (FailureUnknown, En, "The recording could not go on."),
    (FailureUnknown, Ru, "Запись не удалось продолжить."),
    (JobListTitle, En, "*Your recordings*"),
    (JobListTitle, Ru, "*Ваши записи*"),
    (AdminJobListTitle, En, "*All recordings*"),
    (AdminJobListTitle, Ru, "*Все записи*"),
    (
        JobListEmpty,
        En,
        "You have no recordings yet. Send a link to start one.",
    ),
    (
        JobListEmpty,
        Ru,
        "Записей пока нет. Пришлите ссылку, чтобы начать.",
    ),
    (JobListMore, En, "{shown} of {total} shown."),
    (JobListMore, Ru, "Показано {shown} из {total}."),
    (JobOwner, En, "owner {owner}"),
    (JobOwner, Ru, "владелец {owner}"),
    (
        FinalSummary,
        En,
        "Recording {id} *done*\n{media} recorded · {size} · {completeness}\n{files}",
    ),
    (
        FinalSummary,
        Ru,
        "Запись {id} *готова*\nЗаписано {media} · {size} · {completeness}\n{files}",
    ),
    (CompleteNoGaps, En, "complete, no gaps"),
    (CompleteNoGaps, Ru, "полностью, без пропусков"),
    (
        CompleteWithGaps,
        En,
        "{percent} % complete: {lost} of {total} segments lost ({seconds})",
    ),
    (
        CompleteWithGaps,
        Ru,
        "{percent} %: потеряно сегментов {lost} из {total} ({seconds})",
    ),
    (FilesSentOne, En, "{count} file sent."),
    (FilesSentOne, Ru, "Отправлен {count} файл."),
    (FilesSentFew, En, "{count} files sent."),
    (FilesSentFew, Ru, "Отправлено {count} файла."),
    (FilesSentMany, En, "{count} files sent."),
    (FilesSentMany, Ru, "Отправлено {count} файлов."),
    (
        NothingToSend,
        En,
        "Nothing was recorded, so there is no file to send.",
    ),
    (FileCountOne, En, "{count} file"),
    (FileCountOne, Ru, "{count} файл"),
    (FileCountFew, En, "{count} files"),
    (FileCountFew, Ru, "{count} файла"),
    (FileCountMany, En, "{count} files"),
    (FileCountMany, Ru, "{count} файлов"),
    (NothingToSend, Ru, "Ничего не записано, отправлять нечего."),
    (
        FileKeptOnServer,
        En,
        "{name} could not be sent here (too large, or not stored on this machine); it is kept on the server.",
    ),
    (
        FileKeptOnServer,
        Ru,
        "{name} не удалось отправить сюда (слишком большой или хранится не здесь); он сохранён на сервере.",
    ),
    (
        DeliveryFailed,
        En,
        "I couldn't send {name}; it is kept on the server. Tap Send again to retry.",
    ),
    (
        DeliveryFailed,
        Ru,
        "Не удалось отправить {name}; файл сохранён на сервере. Нажмите «Отправить снова».",
    ),
    (
        FailedWithRecording,
        En,
        "What was recorded before the failure is sent to you.",
    ),
    (
        FailedWithRecording,
        Ru,
        "То, что успело записаться, будет отправлено вам.",
    ),
    (
        Caption,
        En,
        "{stream} · {date} · {duration} · part {part}/{parts}",
    ),
    (
        Caption,
        Ru,
        "{stream} · {date} · {duration} · часть {part}/{parts}",
    ),
    (CaptionGaps, En, "gaps: {seconds}"),
    (CaptionGaps, Ru, "пропуски: {seconds}"),
    (
        CaptionDamaged,
        En,
        "⚠️ damaged: {errors} decoding errors, some of it may not play",
    ),
    (
        CaptionDamaged,
        Ru,
        "⚠️ повреждён: ошибок декодирования: {errors}, часть может не воспроизводиться",
    ),
    (
        FilesDamaged,
        En,
        "⚠️ Part {parts} did not decode cleanly: I sent it anyway, but some of it may not play.",
    ),
    (
        FilesDamaged,
        Ru,
        "⚠️ Часть {parts} декодируется с ошибками: я отправил её, но что-то в ней может не воспроизводиться.",
    ),
    (
        PartsJoined,
        En,
        "The stream paused or restarted {times}; the pieces ({pieces}) are joined into one file.",
    ),
    (
        PartsJoined,
        Ru,
        "Трансляция прерывалась или перезапускалась (раз: {times}); фрагменты ({pieces}) склеены в один файл.",
    ),
    (
        DeleteNeedsId,
        En,
        "Which recording? Deleting needs its id, for example:\n`/delete A3F2B1C9`",
    ),
    (
        DeleteNeedsId,
        Ru,
        "Какую запись? Для удаления нужен её номер, например:\n`/delete A3F2B1C9`",
    ),
    (
        DeleteWhileLive,
        En,
        "Recording {id} is still running; /stop it first.",
    ),
    (DeleteWhileLive, Ru, "Запись {id} ещё идёт; сначала /stop."),
    (
        DeleteConfirm,
        En,
        "Delete recording {id} and all its files? This cannot be undone.",
    ),
    (
        DeleteConfirm,
        Ru,
        "Удалить запись {id} и все её файлы? Отменить будет нельзя.",
    ),
    (Deleted, En, "Deleted recording {id} ({files}, {size})."),
    (Deleted, Ru, "Запись {id} удалена ({files}, {size})."),
    (
        DeleteFailed,
        En,
        "Could not delete {id} completely: {reason}",
    ),
    (
        DeleteFailed,
        Ru,
        "Не удалось полностью удалить {id}: {reason}",
    ),
    (DeleteKept, En, "Kept recording {id}."),
    (DeleteKept, Ru, "Запись {id} оставлена."),
    (AdminOnly, En, "That command is for admins."),
    (AdminOnly, Ru, "Эта команда только для администраторов."),
    (AdminOverview, En, "*{total} jobs*"),
    (AdminOverview, Ru, "*Всего заданий: {total}*"),
    (
        AdminHelp,
        En,
        "*Admin commands*\n`/admin` – jobs by state.\n`/admin jobs` – every user's jobs, live first, with owners.\n`/admin stop ID` – stop anyone's job (the owner is told).\n`/delete ID` – delete anyone's finished recording (the owner is told).\n`/admin vip USER_ID` – more recordings at once for a user.\n`/admin unvip USER_ID` – back to the normal limit.\nAdmins may ask for recordings longer than the default limit.",
    ),
    (
        AdminHelp,
        Ru,
        "*Команды администратора*\n`/admin` – задания по состояниям.\n`/admin jobs` – задания всех пользователей, сначала идущие, с владельцами.\n`/admin stop ID` – остановить чужое задание (владелец узнает).\n`/delete ID` – удалить чужую готовую запись (владелец узнает).\n`/admin vip USER_ID` – больше записей одновременно для пользователя.\n`/admin unvip USER_ID` – обычный предел.\nАдминистраторы могут записывать дольше обычного предела.",
    ),
    (AdminStopped, En, "Stopping {id} of {owner}; they are told."),
    (
        AdminStopped,
        Ru,
        "Останавливаю {id} пользователя {owner}; ему сообщено.",
    ),
    (
        OwnerToldStopped,
        En,
        "An admin stopped your recording {id}; you'll get what was recorded.",
    ),
    (
        OwnerToldStopped,
        Ru,
        "Администратор остановил вашу запись {id}; записанное придёт вам.",
    ),
    (
        OwnerToldDeleted,
        En,
        "An admin deleted your recording {id}.",
    ),
    (
        OwnerToldDeleted,
        Ru,
        "Администратор удалил вашу запись {id}.",
    ),
    (
        VipAdded,
        En,
        "User {user} is now VIP ({limit} recordings at once).",
    ),
    (
        VipAdded,
        Ru,
        "Пользователь {user} теперь VIP ({limit} записей одновременно).",
    ),
    (VipRemoved, En, "User {user} is no longer VIP."),
    (VipRemoved, Ru, "Пользователь {user} больше не VIP."),
    (
        LanguageChoice,
        En,
        "Language: English. Choose: English (/language en), Русский (/language ru).",
    ),
    (
        LanguageChoice,
        Ru,
        "Язык: русский. Выбор: English (/language en), Русский (/language ru).",
    ),
    (LanguageSet, En, "I'll speak English from now on."),
    (LanguageSet, Ru, "Теперь я говорю по-русски."),
    (
        LanguageUnknown,
        En,
        "I speak English (/language en) and Russian (/language ru).",
    ),
    (
        LanguageUnknown,
        Ru,
        "Я говорю по-английски (/language en) и по-русски (/language ru).",
    ),
    (
        SenderRefused,
        En,
        "I can't tell who sent this (an automatic forward or a hidden sender), so I can't keep a recording for them. Write to me from your own account, or post as the chat itself.",
    ),
    (
        SenderRefused,
        Ru,
        "Не могу понять, кто это прислал (автоматическая пересылка или скрытый отправитель), поэтому не могу вести для него запись. Напишите мне из своего аккаунта или от имени самого чата.",
    ),
    (ButtonStop, En, "⏹ Stop"),
    (ButtonStop, Ru, "⏹ Стоп"),
    (ButtonPause, En, "⏸ Pause"),
    (ButtonPause, Ru, "⏸ Пауза"),
    (ButtonResume, En, "▶ Resume"),
    (ButtonResume, Ru, "▶ Продолжить"),
    (ButtonStatus, En, "🔄 Status"),
    (ButtonStatus, Ru, "🔄 Статус"),
    (ButtonCancel, En, "✖ Cancel"),
    (ButtonCancel, Ru, "✖ Отменить"),
    (ButtonSendAgain, En, "📤 Send again"),
    (ButtonSendAgain, Ru, "📤 Отправить снова"),
    (ButtonDelete, En, "🗑 Delete"),
    (ButtonDelete, Ru, "🗑 Удалить"),
    (ButtonKeep, En, "Keep"),
    (ButtonKeep, Ru, "Оставить"),
    (ButtonMore, En, "More ▸"),
    (ButtonMore, Ru, "Ещё ▸"),
    (ToastStopping, En, "Stopping…"),
    (ToastStopping, Ru, "Останавливаю…"),
    (ToastPausing, En, "Pausing…"),
    (ToastPausing, Ru, "Ставлю на паузу…"),
    (ToastResuming, En, "Resuming…"),
    (ToastResuming, Ru, "Продолжаю…"),
    (ToastCancelling, En, "Cancelling…"),
    (ToastCancelling, Ru, "Отменяю…"),
    (ToastAlreadyFinished, En, "Already finished"),
    (ToastAlreadyFinished, Ru, "Уже закончена"),
    (ToastNotYours, En, "Not your recording"),
    (ToastNotYours, Ru, "Это не ваша запись"),
    (
        ToastSlowDown,
        En,
        "Too many presses: wait a minute, then press again",
    ),
    (
        ToastSlowDown,
        Ru,
        "Слишком много нажатий: подождите минуту и нажмите снова",
    ),
    (
        ToastChatAdministratorsOnly,
        En,
        "This recording belongs to the chat: only its administrators can do that",
    ),
    (
        ToastChatAdministratorsOnly,
        Ru,
        "Эта запись принадлежит чату: это могут только его администраторы",
    ),
    (ToastTryAgain, En, "Something went wrong; try again"),
    (ToastTryAgain, Ru, "Что-то пошло не так; попробуйте ещё раз"),
    (ToastStarting, En, "Starting…"),
    (ToastStarting, Ru, "Начинаю…"),
    (
        ToastExpired,
        En,
        "This button has expired; send the link again",
    ),
    (ToastExpired, Ru, "Кнопка устарела; пришлите ссылку снова"),
    (ToastUpdated, En, "Updated"),
    (ToastUpdated, Ru, "Обновлено"),
    (ToastDeleting, En, "Deleting…"),
    (ToastDeleting, Ru, "Удаляю…"),
    (ToastKept, En, "Kept"),
    (ToastKept, Ru, "Оставлено"),
    (ToastSending, En, "Sending…"),
    (ToastSending, Ru, "Отправляю…"),
    (
        MenuRecord,
        En,
        "record a stream: /record <link> [2h] [high]",
    ),
    (
        MenuRecord,
        Ru,
        "записать трансляцию: /record <ссылка> [2h] [high]",
    ),
    (MenuStop, En, "stop a recording and get the file"),
    (MenuStop, Ru, "остановить запись и получить файл"),
    (MenuPause, En, "pause a recording"),
    (MenuPause, Ru, "поставить запись на паузу"),
    (MenuResume, En, "resume a paused recording"),
    (MenuResume, Ru, "продолжить запись"),
    (MenuStatus, En, "progress of a recording"),
    (MenuStatus, Ru, "ход записи"),
    (MenuList, En, "your recordings"),
    (MenuList, Ru, "ваши записи"),
    (MenuCancel, En, "cancel a recording that has not started"),
    (MenuCancel, Ru, "отменить запись, которая не началась"),
    (MenuDelete, En, "delete a finished recording's files"),
    (MenuDelete, Ru, "удалить файлы готовой записи"),
    (MenuLanguage, En, "English / Русский"),
    (MenuLanguage, Ru, "English / Русский"),
    (MenuHelp, En, "how to use the bot"),
    (MenuHelp, Ru, "как пользоваться ботом"),
    (
        ImpossibleTime,
        En,
        "{given} is not a time of day: hours go from 0 to 23, minutes from 0 to 59. For example: `at 20:00` or `at 8pm`.",
    ),
    (
        ImpossibleTime,
        Ru,
        "{given} – такого времени нет: часы от 0 до 23, минуты от 0 до 59. Например: `в 20:00`.",
    ),
    (
        UnknownTimeZone,
        En,
        "{given} is not a time zone I know. Use a name like `Europe/Berlin`, `America/New_York` or `UTC`, e.g. `/timezone Europe/Berlin`.",
    ),
    (
        UnknownTimeZone,
        Ru,
        "{given} – не знаю такого часового пояса. Используйте название вида `Europe/Moscow`, `Europe/Berlin` или `UTC`, например `/timezone Europe/Moscow`.",
    ),
    (
        RepeatWithoutTime,
        En,
        "At what time? A repeating recording needs a time of day, for example: `every Friday at 20:00 for 2h`.",
    ),
    (
        RepeatWithoutTime,
        Ru,
        "Во сколько? Для повторяющейся записи нужно время, например: `каждую пятницу в 20:00 на 2 часа`.",
    ),
    (
        DayWithoutTime,
        En,
        "{given} at what time? For example: `tomorrow 21:30 for 90 min`.",
    ),
    (
        DayWithoutTime,
        Ru,
        "{given} – а во сколько? Например: `завтра в 21:30 на 90 минут`.",
    ),
    (
        Contradiction,
        En,
        "{first} and {second} contradict each other. Say only one of them.",
    ),
    (
        Contradiction,
        Ru,
        "{first} и {second} противоречат друг другу. Укажите что-то одно.",
    ),
    (
        ClipLength,
        En,
        "A clip is at most {minutes} min long, for example `/clip A3F2B1C9 5m`.",
    ),
    (
        ClipLength,
        Ru,
        "Клип может быть не длиннее {minutes} мин, например `/clip A3F2B1C9 5m`.",
    ),
    (
        ScheduleCreated,
        En,
        "⏰ *Scheduled* {id}: {link}\n{recurrence} at {time} ({zone}), {duration} each.\nNext: *{next}*. /schedule lists and cancels.",
    ),
    (
        ScheduleCreated,
        Ru,
        "⏰ *Запланировано* {id}: {link}\n{recurrence} в {time} ({zone}), по {duration}.\nСледующая: *{next}*. Список и отмена: /schedule.",
    ),
    (
        ScheduleInThePast,
        En,
        "{time} today has already passed in {zone} (it is {now} there). Say `tomorrow {time}` or a later time.",
    ),
    (
        ScheduleInThePast,
        Ru,
        "{time} сегодня уже прошло по поясу {zone} (там сейчас {now}). Напишите `завтра в {time}` или более позднее время.",
    ),
    (
        ScheduleTooMany,
        En,
        "You have {limit} scheduled recordings, the most allowed. Cancel one in /schedule first.",
    ),
    (
        ScheduleTooMany,
        Ru,
        "У вас уже {limit} запланированных записей – это предел. Сначала отмените одну в /schedule.",
    ),
    (
        ScheduleOverlapsTooMany,
        En,
        "At those times {count} of your recordings would run at once, and you may run {limit} at once. Choose another time, or cancel one in /schedule first.",
    ),
    (
        ScheduleOverlapsTooMany,
        Ru,
        "В это время у вас шли бы {count} записи одновременно, а можно не больше {limit}. Выберите другое время или сначала отмените одну в /schedule.",
    ),
    (
        ScheduleNeedsOneLink,
        En,
        "A scheduled recording takes one link; send each link in its own message.",
    ),
    (
        ScheduleNeedsOneLink,
        Ru,
        "В запланированной записи одна ссылка; пришлите каждую ссылку отдельным сообщением.",
    ),
    (
        ScheduleDurationCapped,
        En,
        "Each recording runs {duration} (no duration was given, or it was longer than allowed).",
    ),
    (
        ScheduleDurationCapped,
        Ru,
        "Каждая запись идёт {duration} (длительность не указана или больше разрешённой).",
    ),
    (
        ScheduleListTitle,
        En,
        "*Your scheduled recordings ({count})*",
    ),
    (
        ScheduleListTitle,
        Ru,
        "*Ваши запланированные записи ({count})*",
    ),
    (
        ScheduleListEmpty,
        En,
        "You have no scheduled recordings. Schedule one like `record <link> at 20:00 for 2h` or `every Friday at 20:00 for 2h`.",
    ),
    (
        ScheduleListEmpty,
        Ru,
        "Запланированных записей нет. Запланировать: `запиши <ссылка> в 20:00 на 2 часа` или `каждую пятницу в 20:00 на 2 часа`.",
    ),
    (
        ScheduleLine,
        En,
        "{id} {recurrence} at {time} ({rule_zone}), {duration}; next *{next}* ({zone})\n{link}",
    ),
    (
        ScheduleLine,
        Ru,
        "{id} {recurrence} в {time} ({rule_zone}), {duration}; следующая *{next}* ({zone})\n{link}",
    ),
    (ScheduleCancelled, En, "Schedule {id} cancelled."),
    (ScheduleCancelled, Ru, "Расписание {id} отменено."),
    (
        ScheduleNotFound,
        En,
        "You have no active schedule {id} (it is over, cancelled, or not yours). /schedule lists yours.",
    ),
    (
        ScheduleNotFound,
        Ru,
        "У вас нет действующего расписания {id} (оно закончилось, отменено или не ваше). Ваши: /schedule.",
    ),
    (RecurrenceOnce, En, "Once"),
    (RecurrenceOnce, Ru, "Один раз"),
    (RecurrenceDaily, En, "Every day"),
    (RecurrenceDaily, Ru, "Каждый день"),
    (RecurrenceWeekly, En, "Every {days}"),
    (RecurrenceWeekly, Ru, "Каждый: {days}"),
    (
        WeekdayNames,
        En,
        "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
    ),
    (
        WeekdayNames,
        Ru,
        "понедельник,вторник,среда,четверг,пятница,суббота,воскресенье",
    ),
    (
        TimeZoneCurrent,
        En,
        "Your time zone is {zone} (it is {now} there). Change it like `/timezone Europe/Berlin`.",
    ),
    (
        TimeZoneCurrent,
        Ru,
        "Ваш часовой пояс: {zone} (там сейчас {now}). Изменить: `/timezone Europe/Moscow`.",
    ),
    (
        TimeZoneSet,
        En,
        "Time zone set to {zone} (it is {now} there). Times you write are read in it.",
    ),
    (
        TimeZoneSet,
        Ru,
        "Часовой пояс: {zone} (там сейчас {now}). Время в ваших сообщениях читается по нему.",
    ),
    (OptionsLine, En, "Options: {options}."),
    (OptionsLine, Ru, "Параметры: {options}."),
    (OptionFromStart, En, "from the start"),
    (OptionFromStart, Ru, "с начала"),
    (OptionSubtitles, En, "subtitles {choice}"),
    (OptionSubtitles, Ru, "субтитры {choice}"),
    (OptionAudioLanguage, En, "audio {language}"),
    (OptionAudioLanguage, Ru, "звук {language}"),
    (OptionAllAudio, En, "all audio tracks"),
    (OptionAllAudio, Ru, "все звуковые дорожки"),
    (
        OptionWaitForLive,
        En,
        "waits up to {duration} for the stream to start",
    ),
    (
        OptionWaitForLive,
        Ru,
        "ждёт начала трансляции до {duration}",
    ),
    (
        ClipRequested,
        En,
        "✂ Making a clip of the last {duration} of {id}; it comes as a file while the recording goes on.",
    ),
    (
        ClipRequested,
        Ru,
        "✂ Делаю клип из последних {duration} записи {id}; он придёт файлом, запись продолжается.",
    ),
    (
        ClipNotLive,
        En,
        "{id} is not recording now ({state}); a clip is made while a recording runs.",
    ),
    (
        ClipNotLive,
        Ru,
        "{id} сейчас не записывается ({state}); клип делается во время записи.",
    ),
    (
        ClipBusy,
        En,
        "A clip of {id} is being made already; wait for it, then ask again.",
    ),
    (
        ClipBusy,
        Ru,
        "Клип из {id} уже делается; дождитесь его и попросите снова.",
    ),
    (
        ClipNothingYet,
        En,
        "{id} has nothing recorded yet to clip; try again in a minute.",
    ),
    (
        ClipNothingYet,
        Ru,
        "В {id} пока нечего вырезать; попробуйте через минуту.",
    ),
    (
        ClipFailed,
        En,
        "The clip of {id} could not be made: {reason}",
    ),
    (ClipFailed, Ru, "Клип из {id} сделать не удалось: {reason}"),
    (
        ClipCaption,
        En,
        "✂ Clip: the last {duration} of {id} · {name}",
    ),
    (
        ClipCaption,
        Ru,
        "✂ Клип: последние {duration} записи {id} · {name}",
    ),
    (ButtonCancelSchedule, En, "✖ Cancel {id}"),
    (ButtonCancelSchedule, Ru, "✖ Отменить {id}"),
    (ButtonClip, En, "✂ Clip 5 min"),
    (ButtonClip, Ru, "✂ Клип 5 мин"),
    (ToastScheduleCancelled, En, "Schedule cancelled"),
    (ToastScheduleCancelled, Ru, "Расписание отменено"),
    (ToastClipping, En, "Making the clip…"),
    (ToastClipping, Ru, "Делаю клип…"),
    (
        MenuSchedule,
        En,
        "your scheduled recordings, with Cancel buttons",
    ),
    (MenuSchedule, Ru, "ваши запланированные записи и их отмена"),
    (MenuTimeZone, En, "your time zone: /timezone Europe/Berlin"),
    (
        MenuTimeZone,
        Ru,
        "ваш часовой пояс: /timezone Europe/Moscow",
    ),
    (MenuClip, En, "the last minutes of a recording: /clip ID 5m"),
    (MenuClip, Ru, "последние минуты записи: /clip ID 5m"),
    (ToastAlreadySending, En, "Already on its way"),
    (ToastAlreadySending, Ru, "Уже отправляю"),
    (
        ResendFilesDeleted,
        En,
        "The files of recording {id} have been deleted: there is nothing left to send again.",
    ),
    (
        ResendFilesDeleted,
        Ru,
        "Файлы записи {id} уже удалены: отправить их снова нельзя.",
    ),
    (
        RecordingExpires,
        En,
        "The files are kept until {time}, then deleted.",
    ),
    (
        RecordingExpires,
        Ru,
        "Файлы хранятся до {time}, потом удаляются.",
    ),
    (
        DiskFilling,
        En,
        "⚠️ The disk is {percent} full ({used} of {limit}). At 95 % the oldest finished recordings are deleted.",
    ),
    (
        DiskFilling,
        Ru,
        "⚠️ Диск заполнен на {percent} ({used} из {limit}). При 95 % самые старые готовые записи удаляются.",
    ),
    (
        DiskFreed,
        En,
        "🧹 The disk reached {percent} ({before} of {limit}): deleted the oldest finished recordings ({count}: {jobs}); now {after}.",
    ),
    (
        DiskFreed,
        Ru,
        "🧹 Диск заполнился на {percent} ({before} из {limit}): удалены самые старые готовые записи ({count}: {jobs}); теперь {after}.",
    ),
    (
        DiskFullNothingToDelete,
        En,
        "🛑 The disk is {percent} full ({used} of {limit}) and no finished recording is left to delete: new recordings wait until space is freed.",
    ),
    (
        DiskFullNothingToDelete,
        Ru,
        "🛑 Диск заполнен на {percent} ({used} из {limit}), а готовых записей для удаления нет: новые записи ждут, пока освободится место.",
    ),
    (
        RepeatNotUnderstood,
        En,
        "I can't repeat {given}. Recordings repeat every day, on weekdays, on weekends or on named days, for example: `every Friday at 20:00 for 2h`, `every weekday at 7:00`.",
    ),
    (
        RepeatNotUnderstood,
        Ru,
        "Не умею повторять {given}. Запись повторяется каждый день, по будням, по выходным или в названные дни, например: `каждую пятницу в 20:00 на 2 часа`, `по будням в 7:00`.",
    ),
    (
        StartInNotSupported,
        En,
        "To start later ({given}), write the clock time, for example `at 20:30 for 2h`. Without a time the link is recorded now.",
    ),
    (
        StartInNotSupported,
        Ru,
        "Чтобы начать позже ({given}), напишите время, например `в 20:30 на 2 часа`. Без времени ссылка записывается сразу.",
    ),
    (
        EndWithoutStart,
        En,
        "{given} from when? Write the start too, for example `at 20:00 until 22:00`, or how long: `for 2h`.",
    ),
    (
        EndWithoutStart,
        Ru,
        "{given} – а с какого времени? Напишите и начало, например `с 20:00 до 22:00`, или сколько записывать: `на 2 часа`.",
    ),
    (
        ScheduleListMore,
        En,
        "…and {count} more, on the buttons below.",
    ),
    (ScheduleListMore, Ru, "…и ещё {count}, на кнопках ниже."),
];

/// The template of `key` in `language` (English when a language lacks it: the test below makes
/// sure none does).
pub fn template(language: Language, key: Key) -> &'static str {
    let find = |wanted: Language| {
        CATALOGUE
            .iter()
            .find(|(entry_key, entry_language, _)| *entry_key == key && *entry_language == wanted)
            .map(|(_, _, text)| *text)
    };
    find(language)
        .or_else(|| find(Language::English))
        .unwrap_or("")
}

fn argument<'a>(arguments: &'a [(&str, String)], name: &str) -> &'a str {
    arguments
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map_or("", |(_, value)| value.as_str())
}

/// Renders a template as MarkdownV2; arguments are inserted as given (already escaped).
pub fn render(language: Language, key: Key, arguments: &[(&str, String)]) -> String {
    let text = template(language, key);
    let mut rendered = String::with_capacity(text.len() + 32);
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '{' => {
                let name: String = characters
                    .by_ref()
                    .take_while(|next| *next != '}')
                    .collect();
                rendered.push_str(argument(arguments, &name));
            }
            '`' => {
                let inner: String = characters
                    .by_ref()
                    .take_while(|next| *next != '`')
                    .collect();
                rendered.push('`');
                rendered.push_str(&escape_markdown_v2_code(&inner));
                rendered.push('`');
            }
            '*' => rendered.push('*'),
            other => rendered.push_str(&escape_markdown_v2(&other.to_string())),
        }
    }
    rendered
}

/// Renders a template as plain text (buttons, toasts, captions): marks dropped, arguments as given.
pub fn render_plain(language: Language, key: Key, arguments: &[(&str, String)]) -> String {
    let text = template(language, key);
    let mut rendered = String::with_capacity(text.len() + 32);
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        match character {
            '{' => {
                let name: String = characters
                    .by_ref()
                    .take_while(|next| *next != '}')
                    .collect();
                rendered.push_str(argument(arguments, &name));
            }
            '`' | '*' => {}
            other => rendered.push(other),
        }
    }
    rendered
}

/// The `{argument}` names a template uses, in order.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        names.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_in_every_language_once_with_the_same_arguments() {
        for key in Key::ALL {
            let english = CATALOGUE
                .iter()
                .filter(|(entry_key, language, _)| {
                    entry_key == key && *language == Language::English
                })
                .map(|(_, _, text)| *text)
                .collect::<Vec<_>>();
            assert_eq!(english.len(), 1, "{key:?} in English");
            for language in Language::ALL {
                let entries: Vec<&str> = CATALOGUE
                    .iter()
                    .filter(|(entry_key, entry_language, _)| {
                        entry_key == key && *entry_language == language
                    })
                    .map(|(_, _, text)| *text)
                    .collect();
                assert_eq!(
                    entries.len(),
                    1,
                    "{key:?} is missing or doubled in {language:?}"
                );
                let text = entries[0];
                assert!(!text.trim().is_empty(), "{key:?} is empty in {language:?}");
                assert_eq!(
                    placeholders(text),
                    placeholders(english[0]),
                    "{key:?} in {language:?} takes other arguments than in English"
                );
                assert_eq!(
                    text.matches('`').count() % 2,
                    0,
                    "{key:?} {language:?}: unclosed code"
                );
                assert_eq!(
                    text.matches('*').count() % 2,
                    0,
                    "{key:?} {language:?}: unclosed bold"
                );
            }
        }
    }

    #[test]
    fn languages_come_from_codes() {
        assert_eq!(Language::from_code("ru-RU"), Some(Language::Russian));
        assert_eq!(Language::from_code("en_GB"), Some(Language::English));
        assert_eq!(Language::from_code("РУССКИЙ"), Some(Language::Russian));
        assert_eq!(Language::from_code("de"), None);
    }

    #[test]
    fn russian_plurals() {
        let forms: Vec<PluralForm> = [1, 2, 5, 11, 21, 22, 25, 112]
            .iter()
            .map(|count| plural_form(Language::Russian, *count))
            .collect();
        use PluralForm::*;
        assert_eq!(forms, [One, Few, Many, Many, One, Few, Many, Many]);
        assert_eq!(plural_form(Language::English, 1), One);
        assert_eq!(plural_form(Language::English, 0), Many);
    }
}
